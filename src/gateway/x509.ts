/**
 * X.509 certificates and PKCS#10 certificate requests for the gateway's trust: ECDSA P-256 keys,
 * SHA-256 signatures, built with `der.ts` and signed with `node:crypto`. Only what the clusterset
 * needs: a self-signed root, and leaf certificates carrying a SPIFFE-style URI SAN and DNS SANs.
 */
import {
  createHash,
  createPublicKey,
  generateKeyPairSync,
  randomBytes,
  sign,
  verify,
  X509Certificate,
} from "node:crypto";
import type { KeyObject } from "node:crypto";
import type { Element } from "./der.js";
import {
  bitString,
  boolean,
  children,
  decodeOid,
  explicit,
  expectElement,
  fromPem,
  namedBits,
  octetString,
  oid,
  readElement,
  sequence,
  set,
  smallInteger,
  Tag,
  time,
  tlv,
  toPem,
  unsignedInteger,
  utf8,
} from "./der.js";

const OID = {
  ecdsaWithSha256: "1.2.840.10045.4.3.2",
  commonName: "2.5.4.3",
  organization: "2.5.4.10",
  extensionRequest: "1.2.840.113549.1.9.14",
  subjectKeyIdentifier: "2.5.29.14",
  keyUsage: "2.5.29.15",
  subjectAltName: "2.5.29.17",
  basicConstraints: "2.5.29.19",
  authorityKeyIdentifier: "2.5.29.35",
  extKeyUsage: "2.5.29.37",
  serverAuth: "1.3.6.1.5.5.7.3.1",
  clientAuth: "1.3.6.1.5.5.7.3.2",
} as const;

const signatureAlgorithm = (): Buffer => sequence(oid(OID.ecdsaWithSha256));

/** A fresh ECDSA P-256 key pair, PEM-encoded (PKCS#8 private key). */
export function generateKeyPair(): { privateKeyPem: string; publicKey: KeyObject } {
  const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  return { privateKeyPem: privateKey.export({ type: "pkcs8", format: "pem" }).toString(), publicKey };
}

export interface DistinguishedName {
  commonName: string;
  organization?: string;
}

function encodeName(name: DistinguishedName): Buffer {
  const rdns: Buffer[] = [];
  if (name.organization) rdns.push(set(sequence(oid(OID.organization), utf8(name.organization))));
  rdns.push(set(sequence(oid(OID.commonName), utf8(name.commonName))));
  return sequence(...rdns);
}

export interface SubjectAltNames {
  uris?: string[];
  dnsNames?: string[];
}

function encodeSans(sans: SubjectAltNames): Buffer {
  // GeneralName CHOICE, IMPLICIT tags: [2] dNSName, [6] uniformResourceIdentifier (both IA5String).
  const names = [
    ...(sans.uris ?? []).map((u) => tlv(0x86, Buffer.from(u, "ascii"))),
    ...(sans.dnsNames ?? []).map((d) => tlv(0x82, Buffer.from(d, "ascii"))),
  ];
  return sequence(...names);
}

function extension(id: string, critical: boolean, value: Buffer): Buffer {
  return critical
    ? sequence(oid(id), boolean(true), octetString(value))
    : sequence(oid(id), octetString(value));
}

function spkiDer(publicKey: KeyObject): Buffer {
  return publicKey.export({ type: "spki", format: "der" });
}

/** RFC 5280 §4.2.1.2 method 1: SHA-1 of the subjectPublicKey bits. */
export function keyIdentifier(publicKey: KeyObject): Buffer {
  const spki = children(expectElement(spkiDer(publicKey), Tag.sequence, "SubjectPublicKeyInfo").content);
  const bits = spki[1];
  if (!bits || bits.tag !== Tag.bitString) throw new Error("SubjectPublicKeyInfo without a key");
  return createHash("sha1").update(bits.content.subarray(1)).digest();
}

/** Builds and signs a PKCS#10 request for `publicKey`'s pair, asking for `sans`. */
export function createCertificateRequest(
  privateKeyPem: string,
  subject: DistinguishedName,
  sans: SubjectAltNames,
): string {
  const publicKey = createPublicKey(privateKeyPem);
  const requested = sequence(extension(OID.subjectAltName, false, encodeSans(sans)));
  const attributes = tlv(0xa0, sequence(oid(OID.extensionRequest), set(requested)));
  const info = sequence(smallInteger(0), encodeName(subject), spkiDer(publicKey), attributes);
  const signature = sign("sha256", info, privateKeyPem);
  return toPem(sequence(info, signatureAlgorithm(), bitString(signature)), "CERTIFICATE REQUEST");
}

export interface CertificateRequest {
  publicKey: KeyObject;
  commonName: string | undefined;
  /** SANs the requester asked for; a signer decides for itself what to grant. */
  requested: SubjectAltNames;
}

function readCommonName(nameDer: Buffer): string | undefined {
  for (const rdn of children(nameDer)) {
    for (const atv of children(rdn.content)) {
      const [type, value] = children(atv.content);
      if (type && value && decodeOid(type.content) === OID.commonName) return value.content.toString("utf8");
    }
  }
  return undefined;
}

function readSans(extensionsDer: Buffer): SubjectAltNames {
  const out: SubjectAltNames = { uris: [], dnsNames: [] };
  for (const ext of children(extensionsDer)) {
    const parts = children(ext.content);
    if (decodeOid(parts[0]!.content) !== OID.subjectAltName) continue;
    const value = parts[parts.length - 1]!;
    for (const name of children(readElement(value.content).content)) {
      if (name.tag === 0x86) out.uris!.push(name.content.toString("ascii"));
      if (name.tag === 0x82) out.dnsNames!.push(name.content.toString("ascii"));
    }
  }
  return out;
}

/** Parses a PKCS#10 request and checks its self-signature (proof the requester holds the key). */
export function parseCertificateRequest(pem: string): CertificateRequest {
  const der = fromPem(pem, "CERTIFICATE REQUEST");
  const [info, algorithm, signature] = children(
    expectElement(der, Tag.sequence, "CertificationRequest").content,
  );
  if (!info || !algorithm || !signature || signature.tag !== Tag.bitString) throw new Error("malformed CSR");
  if (decodeOid(children(algorithm.content)[0]!.content) !== OID.ecdsaWithSha256)
    throw new Error("CSR must be signed with ecdsa-with-SHA256");
  const [version, subject, spki, attributes] = children(info.content);
  if (!version || !subject || !spki) throw new Error("malformed CSR info");
  const publicKey = createPublicKey({ key: spki.raw, format: "der", type: "spki" });
  if (publicKey.asymmetricKeyType !== "ec" || publicKey.asymmetricKeyDetails?.namedCurve !== "prime256v1")
    throw new Error("CSR key must be ECDSA P-256");
  if (!verify("sha256", info.raw, publicKey, signature.content.subarray(1)))
    throw new Error("CSR signature does not verify");
  return { publicKey, commonName: readCommonName(subject.content), requested: requestedSans(attributes) };
}

/** The SANs in a CSR's extensionRequest attribute, if any. */
function requestedSans(attributes: Element | undefined): SubjectAltNames {
  if (attributes?.tag !== 0xa0) return {};
  for (const attr of children(attributes.content)) {
    const [type, values] = children(attr.content);
    if (type && values && decodeOid(type.content) === OID.extensionRequest)
      return readSans(children(values.content)[0]!.content);
  }
  return {};
}

export interface IssueOptions {
  subject: DistinguishedName;
  subjectPublicKey: KeyObject;
  notBefore: Date;
  notAfter: Date;
  /** Omitted for a self-signed root. */
  issuer?: { certPem: string; privateKeyPem: string };
  /** Signing key of a self-signed root (its own). */
  selfSignedKeyPem?: string;
  isCA: boolean;
  sans?: SubjectAltNames;
}

/** A random positive 128-bit serial, hex, as Node's X509Certificate prints it (upper case). */
function newSerial(): Buffer {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0]! & 0x7f) | 0x01; // positive and exactly 16 bytes long
  return bytes;
}

function subjectOf(certPem: string): Buffer {
  const der = new X509Certificate(certPem).raw;
  const cert = children(expectElement(der, Tag.sequence, "Certificate").content);
  const tbs = children(cert[0]!.content);
  const fields = tbs[0]?.tag === 0xa0 ? tbs.slice(1) : tbs; // skip the explicit version
  // serial, signature, issuer, validity, subject
  return fields[4]!.raw;
}

/** Issues a v3 certificate signed with the issuer's key (or self-signed). Returns PEM. */
export function issueCertificate(o: IssueOptions): string {
  const signerKeyPem = o.issuer?.privateKeyPem ?? o.selfSignedKeyPem;
  if (!signerKeyPem) throw new Error("issueCertificate needs an issuer or a self-signing key");
  const issuerPublicKey = o.issuer ? new X509Certificate(o.issuer.certPem).publicKey : o.subjectPublicKey;
  const issuerName = o.issuer ? subjectOf(o.issuer.certPem) : encodeName(o.subject);
  const tbs = sequence(
    explicit(0, smallInteger(2)), // v3
    unsignedInteger(newSerial()),
    signatureAlgorithm(),
    issuerName,
    sequence(time(o.notBefore), time(o.notAfter)),
    encodeName(o.subject),
    spkiDer(o.subjectPublicKey),
    explicit(3, sequence(...buildExtensions(o, issuerPublicKey))),
  );
  const signature = sign("sha256", tbs, signerKeyPem);
  return toPem(sequence(tbs, signatureAlgorithm(), bitString(signature)), "CERTIFICATE");
}

function buildExtensions(o: IssueOptions, issuerPublicKey: KeyObject): Buffer[] {
  const extensions = [
    extension(OID.basicConstraints, true, o.isCA ? sequence(boolean(true)) : sequence()),
    // CA: keyCertSign (5), cRLSign (6). Leaf: digitalSignature (0) — all an ECDHE handshake needs.
    extension(OID.keyUsage, true, o.isCA ? namedBits([5, 6]) : namedBits([0])),
    extension(OID.subjectKeyIdentifier, false, octetString(keyIdentifier(o.subjectPublicKey))),
    extension(OID.authorityKeyIdentifier, false, sequence(tlv(0x80, keyIdentifier(issuerPublicKey)))),
  ];
  if (!o.isCA) {
    // Gateways are servers to their peers and clients of them, with one identity.
    extensions.push(extension(OID.extKeyUsage, false, sequence(oid(OID.serverAuth), oid(OID.clientAuth))));
  }
  if (o.sans && ((o.sans.uris?.length ?? 0) > 0 || (o.sans.dnsNames?.length ?? 0) > 0)) {
    // RFC 5280: critical when the subject name is empty; ours always has a CN, so not critical.
    extensions.push(extension(OID.subjectAltName, false, encodeSans(o.sans)));
  }
  return extensions;
}
