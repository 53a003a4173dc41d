import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { X509Certificate } from "node:crypto";
import { createCertificateRequest, generateKeyPair, parseCertificateRequest } from "./x509.js";
import {
  classifyPeer,
  createGatewayKeyRequest,
  createTrustRoot,
  credentialsFrom,
  identityUri,
  parseIdentityUri,
  PeerVerdicts,
  renewalTime,
  signGatewayRequest,
} from "./trust.js";
import type { TrustBundle } from "./trust.js";

const dir = mkdtempSync(path.join(os.tmpdir(), "meridian-trust-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const root = createTrustRoot("demo.example");
const bundle: TrustBundle = { clusterset: "demo.example", caPems: [root.certPem] };

function openssl(args: string[]): string {
  return execFileSync("openssl", args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

describe("certificates", () => {
  it("issues a root and a gateway certificate that openssl verifies for client and server use", () => {
    const req = createGatewayKeyRequest("demo.example", "east");
    const cert = signGatewayRequest(root, req.csrPem, {
      clusterset: "demo.example",
      clusterId: "east",
      lifetimeSeconds: 3600,
    });
    writeFileSync(path.join(dir, "ca.crt"), root.certPem);
    writeFileSync(path.join(dir, "east.crt"), cert);
    writeFileSync(path.join(dir, "east.csr"), req.csrPem);
    for (const purpose of ["sslclient", "sslserver"]) {
      assert.match(
        openssl([
          "verify",
          "-CAfile",
          path.join(dir, "ca.crt"),
          "-purpose",
          purpose,
          path.join(dir, "east.crt"),
        ]),
        /OK/,
      );
    }
    const text = openssl(["x509", "-in", path.join(dir, "east.crt"), "-noout", "-text"]);
    assert.match(text, /URI:spiffe:\/\/demo.example\/cluster\/east, DNS:east.gateway.demo.example/);
    assert.match(text, /CA:FALSE/);
    assert.match(openssl(["x509", "-in", path.join(dir, "ca.crt"), "-noout", "-text"]), /CA:TRUE/);
    const c = credentialsFrom(req.privateKeyPem, cert);
    assert.ok(c.notAfter - c.notBefore >= 3600_000);
  });

  it("makes CSRs openssl accepts, and refuses a tampered one", () => {
    const req = createGatewayKeyRequest("demo.example", "east");
    execFileSync("openssl", ["req", "-verify", "-noout", "-in", path.join(dir, "east.csr")], {
      stdio: "pipe",
    });
    const parsed = parseCertificateRequest(req.csrPem);
    assert.deepEqual(parsed.requested.uris, ["spiffe://demo.example/cluster/east"]);
    assert.equal(parsed.commonName, "east");
    // Flip one byte inside the signed part: the self-signature must no longer verify.
    const der = Buffer.from(req.csrPem.replace(/-----[^-]+-----|\s/g, ""), "base64");
    der[der.length - 90] = der[der.length - 90]! ^ 0x01;
    const tampered = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString("base64")}\n-----END CERTIFICATE REQUEST-----\n`;
    assert.throws(() => parseCertificateRequest(tampered));
  });

  it("refuses to sign a CSR that asks for another cluster's identity", () => {
    const { privateKeyPem } = generateKeyPair();
    const csr = createCertificateRequest(
      privateKeyPem,
      { commonName: "east" },
      { uris: ["spiffe://demo.example/cluster/west"] },
    );
    assert.throws(
      () =>
        signGatewayRequest(root, csr, { clusterset: "demo.example", clusterId: "east", lifetimeSeconds: 60 }),
      /not granted/,
    );
  });

  it("refuses a certificate that does not match the key", () => {
    const a = createGatewayKeyRequest("demo.example", "east");
    const b = createGatewayKeyRequest("demo.example", "east");
    const cert = signGatewayRequest(root, a.csrPem, {
      clusterset: "demo.example",
      clusterId: "east",
      lifetimeSeconds: 60,
    });
    assert.throws(() => credentialsFrom(b.privateKeyPem, cert), /does not belong/);
  });

  it("renews at two thirds of the lifetime", () => {
    assert.equal(renewalTime({ notBefore: 0, notAfter: 3000 }), 2000);
  });
});

describe("identities", () => {
  it("round-trips identity URIs and rejects anything else", () => {
    const id = { clusterset: "demo.example", clusterId: "eu-1", namespace: "shop" };
    assert.deepEqual(parseIdentityUri(identityUri(id)), id);
    assert.equal(parseIdentityUri("spiffe://demo.example/ns/default/sa/x"), undefined);
    assert.equal(parseIdentityUri("spiffe://demo.example/cluster/UPPER"), undefined);
  });
});

describe("classifyPeer", () => {
  const now = Date.parse("2026-06-01T00:00:00Z");
  const cert = (over: Record<string, string> = {}) => ({
    serialNumber: "0ABC",
    subjectaltname: "URI:spiffe://demo.example/cluster/east, DNS:east.gateway.demo.example",
    valid_from: "Jan  1 00:00:00 2026 GMT",
    valid_to: "Dec 31 00:00:00 2026 GMT",
    ...over,
  });
  const verdict = (facts: Parameters<typeof classifyPeer>[0], b: TrustBundle = bundle) => {
    const v = classifyPeer(facts, b, now);
    return v.ok ? `ok:${v.identity.clusterId}` : v.reason;
  };

  it("accepts a valid peer and names its cluster", () => {
    assert.equal(verdict({ authorized: true, certificate: cert() }), "ok:east");
  });

  it("names every refusal reason", () => {
    assert.equal(verdict({ authorized: false, certificate: {} }), "no-certificate");
    assert.equal(
      verdict({ authorized: false, authorizationError: "SELF_SIGNED_CERT_IN_CHAIN", certificate: cert() }),
      "untrusted-root",
    );
    assert.equal(
      verdict({ authorized: false, authorizationError: "CERT_HAS_EXPIRED", certificate: cert() }),
      "expired",
    );
    assert.equal(
      verdict({ authorized: true, certificate: cert({ valid_to: "Jan  2 00:00:00 2026 GMT" }) }),
      "expired",
      "checked against our clock too (resumed sessions)",
    );
    assert.equal(
      verdict({ authorized: true, certificate: cert() }, { ...bundle, revokedSerials: ["0abc"] }),
      "revoked",
    );
    assert.equal(
      verdict({ authorized: true, certificate: cert() }, { ...bundle, revokedClusters: ["east"] }),
      "revoked",
    );
    assert.equal(
      verdict({ authorized: true, certificate: cert({ subjectaltname: "DNS:east" }) }),
      "bad-identity",
    );
    assert.equal(
      verdict({
        authorized: true,
        certificate: cert({ subjectaltname: "URI:spiffe://other.example/cluster/east" }),
      }),
      "bad-identity",
    );
  });

  it("re-checks a connection's later streams against a replaced bundle and the clock (PeerVerdicts)", () => {
    const verdicts = new PeerVerdicts();
    const facts = { authorized: true, certificate: cert() };
    const of = (b: TrustBundle, at: number) => {
      const v = verdicts.classify(facts, b, at);
      return v.ok ? `ok:${v.identity.clusterId}` : v.reason;
    };
    assert.equal(of(bundle, now), "ok:east");
    assert.equal(of(bundle, now + 1000), "ok:east");
    assert.equal(of({ ...bundle, revokedClusters: ["east"] }, now), "revoked", "a new bundle revokes it");
    const revocable: TrustBundle = { ...bundle };
    assert.equal(of(revocable, now), "ok:east");
    revocable.revokedSerials = ["0abc"];
    assert.equal(of(revocable, now), "revoked", "a revocation list replaced in the bundle applies too");
    assert.equal(of(bundle, Date.parse("Dec 31 00:00:00 2026 GMT")), "expired", "the certificate expires");
    assert.equal(of(bundle, Date.parse("Dec 31 00:00:00 2025 GMT")), "not-yet-valid");
    assert.equal(of(bundle, now), "ok:east", "and is accepted again inside its validity");
  });

  it("reads Node's own certificate fields", () => {
    const x = new X509Certificate(root.certPem);
    assert.ok(Date.parse(x.validTo) > Date.now());
  });
});
