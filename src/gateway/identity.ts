/**
 * Where a running gateway gets its credentials and trust bundle, and how they change while it runs:
 * - `RenewingIdentity` makes its own key, sends only a CSR to a `CertificateSigner`, and renews
 *   before expiry (the mode for the local clusterset and, later, for a controller-run signer);
 * - `FileIdentity` reads cert/key/CA files written by something else (cert-manager, a mounted
 *   Secret) and reloads them when they change.
 * Both tell the gateway through `onChange`, which swaps the SecureContext for new connections only.
 */
import { readFileSync, statSync } from "node:fs";
import type { CertificateSigner, GatewayCredentials, TrustBundle } from "./trust.js";
import { createGatewayKeyRequest, credentialsFrom, renewalTime } from "./trust.js";

export interface IdentitySource {
  readonly clusterId: string;
  credentials(): GatewayCredentials;
  bundle(): TrustBundle;
  /** Called after credentials or the bundle changed. */
  onChange(listener: () => void): void;
  start(): Promise<void>;
  stop(): void;
}

type Listener = () => void;

export interface RenewingIdentityOptions {
  clusterset: string;
  clusterId: string;
  signer: CertificateSigner;
  /** Static trust bundle (roots and revocations); `updateBundle` replaces it. */
  bundle: TrustBundle;
  renewAtFraction?: number;
  clock?: () => number;
  /** First retry delay after a failed renewal; doubles up to a minute. */
  retryMs?: number;
  onError?: (err: unknown) => void;
}

export class RenewingIdentity implements IdentitySource {
  readonly clusterId: string;
  private creds: GatewayCredentials | undefined;
  private trust: TrustBundle;
  private readonly listeners: Listener[] = [];
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private failures = 0;
  private readonly clock: () => number;

  constructor(private readonly o: RenewingIdentityOptions) {
    this.clusterId = o.clusterId;
    this.trust = o.bundle;
    this.clock = o.clock ?? Date.now;
  }

  credentials(): GatewayCredentials {
    if (!this.creds) throw new Error("identity not started");
    return this.creds;
  }

  bundle(): TrustBundle {
    return this.trust;
  }

  onChange(listener: Listener): void {
    this.listeners.push(listener);
  }

  updateBundle(bundle: TrustBundle): void {
    this.trust = bundle;
    this.emit();
  }

  async start(): Promise<void> {
    await this.renew();
  }

  /** Makes a new key and CSR here, has it signed, and switches to it. */
  async renew(): Promise<void> {
    const request = createGatewayKeyRequest(this.o.clusterset, this.o.clusterId);
    const certPem = await this.o.signer.sign(request.csrPem, this.o.clusterId);
    this.creds = credentialsFrom(request.privateKeyPem, certPem);
    this.failures = 0;
    this.emit();
    // At least a second apart, so a certificate whose lifetime is mostly backdating cannot spin.
    this.schedule(Math.max(1000, renewalTime(this.creds, this.o.renewAtFraction) - this.clock()));
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    // setTimeout cannot wait more than ~24.8 days; re-check then.
    this.timer = setTimeout(() => this.renewInBackground(), Math.max(0, Math.min(delayMs, 2 ** 31 - 1)));
    this.timer.unref();
  }

  private renewInBackground(): void {
    this.renew().catch((err: unknown) => {
      this.failures++;
      this.o.onError?.(err);
      this.schedule(Math.min(60_000, (this.o.retryMs ?? 1000) * 2 ** (this.failures - 1)));
    });
  }

  private emit(): void {
    for (const l of this.listeners) l();
  }
}

export interface FileIdentityOptions {
  clusterset: string;
  clusterId: string;
  certFile: string;
  keyFile: string;
  caFile: string;
  /** JSON `{ "serials": [...], "clusters": [...] }`; optional. */
  revokedFile?: string;
  pollMs?: number;
  onError?: (err: unknown) => void;
}

/** Credentials from files another component rotates; polled because inotify misses Secret symlink swaps. */
export class FileIdentity implements IdentitySource {
  readonly clusterId: string;
  private creds: GatewayCredentials | undefined;
  private trust: TrustBundle | undefined;
  private stamp = "";
  private readonly listeners: Listener[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly o: FileIdentityOptions) {
    this.clusterId = o.clusterId;
  }

  credentials(): GatewayCredentials {
    if (!this.creds) throw new Error("identity not started");
    return this.creds;
  }

  bundle(): TrustBundle {
    if (!this.trust) throw new Error("identity not started");
    return this.trust;
  }

  onChange(listener: Listener): void {
    this.listeners.push(listener);
  }

  start(): Promise<void> {
    this.load();
    this.timer = setInterval(() => {
      try {
        this.load();
      } catch (err) {
        // Keep serving with the last good credentials; a half-written file is retried next poll.
        this.o.onError?.(err);
      }
    }, this.o.pollMs ?? 5000);
    this.timer.unref();
    return Promise.resolve();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  private load(): void {
    const files = [this.o.certFile, this.o.keyFile, this.o.caFile, this.o.revokedFile].filter(
      (f): f is string => f !== undefined,
    );
    const stamp = files.map((f) => `${f}:${statSync(f).mtimeMs}`).join("|");
    if (stamp === this.stamp) return;
    const creds = credentialsFrom(
      readFileSync(this.o.keyFile, "utf8"),
      readFileSync(this.o.certFile, "utf8"),
    );
    const revoked = this.o.revokedFile
      ? (JSON.parse(readFileSync(this.o.revokedFile, "utf8")) as { serials?: string[]; clusters?: string[] })
      : {};
    this.creds = creds;
    this.trust = {
      clusterset: this.o.clusterset,
      caPems: splitPems(readFileSync(this.o.caFile, "utf8")),
      revokedSerials: revoked.serials ?? [],
      revokedClusters: revoked.clusters ?? [],
    };
    this.stamp = stamp;
    for (const l of this.listeners) l();
  }
}

/** Splits a CA bundle into its certificates (several roots during a root rotation). */
export function splitPems(text: string): string[] {
  return text.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----\n?/g) ?? [];
}
