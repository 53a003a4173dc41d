/**
 * Certificate issuance through the `openssl` command (OpenSSL 3), used for the local clusterset's
 * control planes. Node 20 can make keys but not X.509 certificates, and openssl is on every Debian.
 * Keys are ECDSA P-256: small and fast to generate and to handshake with.
 */
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

export interface KeyPair {
  certFile: string;
  keyFile: string;
}

export interface IssueRequest {
  /** Directory and base name: writes `<dir>/<name>.crt` and `<dir>/<name>.key`. */
  dir: string;
  name: string;
  commonName: string;
  organization?: string;
  dnsNames?: string[];
  ipAddresses?: string[];
  usage: "server" | "client" | "server+client";
  days?: number;
}

async function openssl(args: string[]): Promise<void> {
  try {
    await run("openssl", args);
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === "ENOENT") {
      throw new Error("openssl is not installed; run scripts/setup.sh (or apt-get install openssl)", {
        cause: err,
      });
    }
    throw new Error(`openssl ${args[0] ?? ""} failed: ${e.stderr ?? e.message}`, { cause: err });
  }
}

function pair(dir: string, name: string): KeyPair {
  return { certFile: path.join(dir, `${name}.crt`), keyFile: path.join(dir, `${name}.key`) };
}

/** Creates a self-signed CA unless one already exists in `dir` (so resumed state keeps its trust). */
export async function ensureCertificateAuthority(
  dir: string,
  name: string,
  commonName: string,
): Promise<KeyPair> {
  const out = pair(dir, name);
  if (existsSync(out.certFile) && existsSync(out.keyFile)) return out;
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  await openssl([
    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
    "-days", "3650", "-subj", `/CN=${commonName}`,
    "-keyout", out.keyFile, "-out", out.certFile,
    "-addext", "basicConstraints=critical,CA:TRUE",
    "-addext", "keyUsage=critical,keyCertSign,cRLSign",
  ]); // prettier-ignore
  return out;
}

/** Issues a leaf certificate signed by `ca`, unless a pair with that name already exists. */
export async function ensureCertificate(ca: KeyPair, req: IssueRequest): Promise<KeyPair> {
  const out = pair(req.dir, req.name);
  if (existsSync(out.certFile) && existsSync(out.keyFile)) return out;
  mkdirSync(req.dir, { recursive: true, mode: 0o700 });
  const subject = `${req.organization ? `/O=${req.organization}` : ""}/CN=${req.commonName}`;
  const sans = [
    ...(req.dnsNames ?? []).map((d) => `DNS:${d}`),
    ...(req.ipAddresses ?? []).map((ip) => `IP:${ip}`),
  ];
  const eku = { server: "serverAuth", client: "clientAuth", "server+client": "serverAuth,clientAuth" }[
    req.usage
  ];
  const args = [
    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
    "-days", String(req.days ?? 3650), "-subj", subject,
    "-CA", ca.certFile, "-CAkey", ca.keyFile,
    "-keyout", out.keyFile, "-out", out.certFile,
    "-addext", "basicConstraints=critical,CA:FALSE",
    "-addext", "keyUsage=critical,digitalSignature,keyEncipherment",
    "-addext", `extendedKeyUsage=${eku}`,
  ]; // prettier-ignore
  if (sans.length > 0) args.push("-addext", `subjectAltName=${sans.join(",")}`);
  await openssl(args);
  return out;
}

/** An EC private key and its public key (`<file>.pub`), e.g. for service-account tokens. */
export async function ensureSigningKey(
  file: string,
): Promise<{ privateKeyFile: string; publicKeyFile: string }> {
  const publicKeyFile = `${file}.pub`;
  if (!existsSync(file)) {
    mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    await openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", file]);
  }
  if (!existsSync(publicKeyFile)) await openssl(["pkey", "-in", file, "-pubout", "-out", publicKeyFile]);
  return { privateKeyFile: file, publicKeyFile };
}

/** Writes `content` with owner-only permissions: everything under pki/ is a secret. */
export function writeSecretFile(file: string, content: string): void {
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  writeFileSync(file, content, { mode: 0o600 });
}
