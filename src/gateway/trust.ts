/**
 * Clusterset trust for the east-west gateway: the root, gateway identities that name their cluster,
 * CSR signing, revocation, classification of a peer's certificate into "accepted" or a refusal
 * reason, and rotation of the gateway's own certificate before it expires.
 *
 * Identity: `spiffe://<clusterset>/cluster/<clusterId>` as a URI SAN, optionally followed by
 * `/ns/<namespace>` for workload identities (a gateway's identity carries no namespace), plus the
 * DNS SAN `<clusterId>.gateway.<clusterset>` for tools that only look at DNS names.
 */
import { createPublicKey, X509Certificate } from "node:crypto";
import tls from "node:tls";
import type { SecureContext } from "node:tls";
import {
  createCertificateRequest,
  generateKeyPair,
  issueCertificate,
  parseCertificateRequest,
} from "./x509.js";

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const DNS_NAME = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$/;

/** Who is on the other end of a gateway connection. */
export interface PeerIdentity {
  clusterset: string;
  clusterId: string;
  namespace?: string;
}

/** Throws unless `clusterId` can appear in a SPIFFE path and a DNS label. */
export function assertClusterId(clusterId: string): void {
  if (!DNS_LABEL.test(clusterId)) throw new Error(`cluster id "${clusterId}" must be a DNS label (RFC 1123)`);
}

export function assertClustersetName(clusterset: string): void {
  if (!DNS_NAME.test(clusterset)) throw new Error(`clusterset name "${clusterset}" must be a DNS name`);
}

export function identityUri(id: PeerIdentity): string {
  const base = `spiffe://${id.clusterset}/cluster/${id.clusterId}`;
  return id.namespace ? `${base}/ns/${id.namespace}` : base;
}

export function gatewayDnsName(clusterset: string, clusterId: string): string {
  return `${clusterId}.gateway.${clusterset}`;
}

/** Parses a Meridian identity URI; `undefined` for anything else. */
export function parseIdentityUri(uri: string): PeerIdentity | undefined {
  const m = /^spiffe:\/\/([^/]+)\/cluster\/([^/]+)(?:\/ns\/([^/]+))?$/.exec(uri);
  if (!m || !DNS_NAME.test(m[1]!) || !DNS_LABEL.test(m[2]!)) return undefined;
  if (m[3] !== undefined && !DNS_LABEL.test(m[3])) return undefined;
  return { clusterset: m[1]!, clusterId: m[2]!, ...(m[3] ? { namespace: m[3] } : {}) };
}

/** The URI SANs of Node's `subjectaltname` string (`URI:a, DNS:b`). */
export function uriSans(subjectAltName: string | undefined): string[] {
  if (!subjectAltName) return [];
  return subjectAltName
    .split(/,\s*/)
    .filter((s) => s.startsWith("URI:"))
    .map((s) => s.slice(4));
}

export interface TrustRoot {
  certPem: string;
  privateKeyPem: string;
}

/** A new clusterset root CA (self-signed, P-256). */
export function createTrustRoot(clusterset: string, validDays = 3650, now = new Date()): TrustRoot {
  assertClustersetName(clusterset);
  const { privateKeyPem, publicKey } = generateKeyPair();
  const certPem = issueCertificate({
    subject: { commonName: `Meridian clusterset ${clusterset} root`, organization: "meridian.dev" },
    subjectPublicKey: publicKey,
    notBefore: new Date(now.getTime() - 60_000),
    notAfter: new Date(now.getTime() + validDays * 86_400_000),
    selfSignedKeyPem: privateKeyPem,
    isCA: true,
  });
  return { certPem, privateKeyPem };
}

/** Key and CSR generated in the process that will use the key; only `csrPem` leaves it. */
export interface GatewayKeyRequest {
  privateKeyPem: string;
  csrPem: string;
}

export function createGatewayKeyRequest(clusterset: string, clusterId: string): GatewayKeyRequest {
  assertClusterId(clusterId);
  const { privateKeyPem } = generateKeyPair();
  const csrPem = createCertificateRequest(
    privateKeyPem,
    { commonName: clusterId, organization: clusterset },
    { uris: [identityUri({ clusterset, clusterId })], dnsNames: [gatewayDnsName(clusterset, clusterId)] },
  );
  return { privateKeyPem, csrPem };
}

/** Turns a CSR into a certificate; the controller (or a local CA) implements it. */
export interface CertificateSigner {
  /** `clusterId` is the identity the signer authenticated the requester as, not what the CSR says. */
  sign(csrPem: string, clusterId: string): Promise<string>;
}

export interface SignOptions {
  clusterset: string;
  clusterId: string;
  lifetimeSeconds: number;
  now?: Date;
  /** Backdating absorbs clock skew between clusters. */
  backdateSeconds?: number;
}

/**
 * Signs a gateway CSR with the root. The names come from `clusterId` (what the signer
 * authenticated), never from the CSR, so a requester cannot ask for another cluster's identity;
 * a CSR that asks for different names is refused rather than silently narrowed.
 */
export function signGatewayRequest(root: TrustRoot, csrPem: string, o: SignOptions): string {
  assertClusterId(o.clusterId);
  const csr = parseCertificateRequest(csrPem);
  const uri = identityUri({ clusterset: o.clusterset, clusterId: o.clusterId });
  const dns = gatewayDnsName(o.clusterset, o.clusterId);
  const asked = [...(csr.requested.uris ?? []), ...(csr.requested.dnsNames ?? [])];
  const foreign = asked.filter((n) => n !== uri && n !== dns);
  if (foreign.length > 0)
    throw new Error(`CSR asks for names not granted to ${o.clusterId}: ${foreign.join(", ")}`);
  const now = o.now ?? new Date();
  return issueCertificate({
    subject: { commonName: o.clusterId, organization: o.clusterset },
    subjectPublicKey: csr.publicKey,
    notBefore: new Date(now.getTime() - (o.backdateSeconds ?? 60) * 1000),
    notAfter: new Date(now.getTime() + o.lifetimeSeconds * 1000),
    issuer: root,
    isCA: false,
    sans: { uris: [uri], dnsNames: [dns] },
  });
}

/** A signer holding the root key in this process (the local clusterset, tests). */
export class LocalSigner implements CertificateSigner {
  constructor(
    private readonly root: TrustRoot,
    private readonly clusterset: string,
    private readonly lifetimeSeconds: number,
    private readonly clock: () => number = Date.now,
    private readonly backdateSeconds = 60,
  ) {}

  sign(csrPem: string, clusterId: string): Promise<string> {
    return Promise.resolve(
      signGatewayRequest(this.root, csrPem, {
        clusterset: this.clusterset,
        clusterId,
        lifetimeSeconds: this.lifetimeSeconds,
        now: new Date(this.clock()),
        backdateSeconds: this.backdateSeconds,
      }),
    );
  }
}

/** What a gateway trusts: root certificates and what has been revoked since issuance. */
export interface TrustBundle {
  clusterset: string;
  caPems: string[];
  /** Certificate serials (hex, any case) that must be refused. */
  revokedSerials?: string[];
  /** Cluster ids whose every certificate must be refused (a cluster that left or was compromised). */
  revokedClusters?: string[];
}

export const REFUSAL_REASONS = [
  "no-certificate",
  "untrusted-root",
  "expired",
  "not-yet-valid",
  "revoked",
  "bad-identity",
  "wrong-peer",
  "handshake-failed",
  "access-denied",
  "limit",
] as const;
export type RefusalReason = (typeof REFUSAL_REASONS)[number];

/** The parts of a TLS socket's state that decide whether a peer is accepted. */
export interface PeerCertificateFacts {
  authorized: boolean;
  authorizationError?: string | Error | null;
  /** Empty/undefined when the peer sent no certificate. */
  certificate?: {
    serialNumber?: string;
    subjectaltname?: string;
    valid_from?: string;
    valid_to?: string;
  } | null;
}

export type PeerVerdict =
  { ok: true; identity: PeerIdentity; serial: string } | { ok: false; reason: RefusalReason; detail: string };

const EXPIRED_CODES = new Set(["CERT_HAS_EXPIRED"]);
const NOT_YET_CODES = new Set(["CERT_NOT_YET_VALID"]);

/**
 * Decides whether a peer is accepted. Pure: the TLS layer runs with `rejectUnauthorized: false`
 * so that every refusal can be classified and counted here, and validity is checked against our
 * clock too, because a resumed TLS session does not re-verify the certificate.
 */
export function classifyPeer(facts: PeerCertificateFacts, bundle: TrustBundle, nowMs: number): PeerVerdict {
  const cert = facts.certificate;
  if (!cert?.serialNumber) return { ok: false, reason: "no-certificate", detail: "peer sent no certificate" };
  if (!facts.authorized) return chainFailure(facts.authorizationError);
  const validity = checkValidity(cert, nowMs);
  if (validity) return validity;
  const identities = uriSans(cert.subjectaltname)
    .map(parseIdentityUri)
    .filter((i): i is PeerIdentity => i !== undefined && i.clusterset === bundle.clusterset);
  const identity = identities[0];
  if (!identity || identities.length > 1)
    return {
      ok: false,
      reason: "bad-identity",
      detail: `no single identity in clusterset ${bundle.clusterset}`,
    };
  const serial = cert.serialNumber.toUpperCase();
  if ((bundle.revokedSerials ?? []).some((s) => s.toUpperCase() === serial))
    return { ok: false, reason: "revoked", detail: `serial ${serial} is revoked` };
  if ((bundle.revokedClusters ?? []).includes(identity.clusterId))
    return { ok: false, reason: "revoked", detail: `cluster ${identity.clusterId} is revoked` };
  return { ok: true, identity, serial };
}

interface KeptAcceptance {
  verdict: PeerVerdict;
  /** What it was decided against: a bundle is replaced, never changed, when trust changes. */
  bundle: TrustBundle;
  revokedSerials: TrustBundle["revokedSerials"];
  revokedClusters: TrustBundle["revokedClusters"];
  /** The certificate's validity, `from <= now < to`. */
  from: number;
  to: number;
}

/**
 * `classifyPeer` for every stream of a connection. Each stream is re-checked so that a revocation
 * or an expiry reaches connections already open, but a multiplexed connection carries thousands of
 * streams, and parsing the certificate's dates and names for each was ~1% of the exporting
 * gateway's CPU per new connection. An acceptance is kept until the bundle (or its revocation
 * lists) is replaced or the certificate's validity window is left; refusals are not kept.
 */
export class PeerVerdicts {
  private readonly accepted = new WeakMap<PeerCertificateFacts, KeptAcceptance>();

  classify(facts: PeerCertificateFacts, bundle: TrustBundle, nowMs: number): PeerVerdict {
    const kept = this.accepted.get(facts);
    if (
      kept &&
      kept.bundle === bundle &&
      kept.revokedSerials === bundle.revokedSerials &&
      kept.revokedClusters === bundle.revokedClusters &&
      kept.from <= nowMs &&
      nowMs < kept.to
    )
      return kept.verdict;
    const verdict = classifyPeer(facts, bundle, nowMs);
    if (!verdict.ok) {
      this.accepted.delete(facts);
      return verdict;
    }
    const cert = facts.certificate!;
    this.accepted.set(facts, {
      verdict,
      bundle,
      revokedSerials: bundle.revokedSerials,
      revokedClusters: bundle.revokedClusters,
      // An unparsable date gives NaN, which no comparison passes: such a peer is checked every time.
      from: cert.valid_from ? Date.parse(cert.valid_from) : -Infinity,
      to: cert.valid_to ? Date.parse(cert.valid_to) : Infinity,
    });
    return verdict;
  }
}

/** OpenSSL's verdict on the chain, as a refusal reason. */
function chainFailure(error: PeerCertificateFacts["authorizationError"]): PeerVerdict & { ok: false } {
  const withCode: { code?: string; message?: string } | null | undefined =
    typeof error === "string" ? { code: error } : error;
  const code = withCode?.code ?? withCode?.message;
  if (code && EXPIRED_CODES.has(code)) return { ok: false, reason: "expired", detail: code };
  if (code && NOT_YET_CODES.has(code)) return { ok: false, reason: "not-yet-valid", detail: code };
  return {
    ok: false,
    reason: "untrusted-root",
    detail: code ?? "certificate not signed by the clusterset root",
  };
}

function checkValidity(
  cert: NonNullable<PeerCertificateFacts["certificate"]>,
  nowMs: number,
): PeerVerdict | undefined {
  if (cert.valid_to && Date.parse(cert.valid_to) <= nowMs)
    return { ok: false, reason: "expired", detail: `expired at ${cert.valid_to}` };
  if (cert.valid_from && Date.parse(cert.valid_from) > nowMs)
    return { ok: false, reason: "not-yet-valid", detail: `valid from ${cert.valid_from}` };
  return undefined;
}

/** The key and certificate a gateway presents, with its validity. */
export interface GatewayCredentials {
  privateKeyPem: string;
  certPem: string;
  notBefore: number;
  notAfter: number;
  serial: string;
}

export function credentialsFrom(privateKeyPem: string, certPem: string): GatewayCredentials {
  const cert = new X509Certificate(certPem);
  const certKey = cert.publicKey.export({ type: "spki", format: "der" });
  const ownKey = createPublicKey(privateKeyPem).export({ type: "spki", format: "der" });
  if (!certKey.equals(ownKey)) throw new Error("the certificate does not belong to the private key");
  return {
    privateKeyPem,
    certPem,
    notBefore: Date.parse(cert.validFrom),
    notAfter: Date.parse(cert.validTo),
    serial: cert.serialNumber.toUpperCase(),
  };
}

/** When to renew: once `fraction` of the lifetime has passed (default two thirds), as cert-manager does. */
export function renewalTime(c: Pick<GatewayCredentials, "notBefore" | "notAfter">, fraction = 2 / 3): number {
  return c.notBefore + (c.notAfter - c.notBefore) * fraction;
}

/** One SecureContext shared by every connection until rotation (per-connection contexts cost ~45%). */
export function secureContextFor(creds: GatewayCredentials, bundle: TrustBundle): SecureContext {
  return tls.createSecureContext({
    key: creds.privateKeyPem,
    cert: creds.certPem,
    ca: bundle.caPems,
    minVersion: "TLSv1.3",
  });
}
