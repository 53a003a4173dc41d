/**
 * Leader election through a coordination.k8s.io Lease, after client-go's algorithm. A candidate
 * takes the lease when it is free or its holder has not renewed it for `leaseDurationMs`, judged by
 * when *this* process last saw the lease change (never by the timestamps stored in it, which come
 * from other machines' clocks). Writes carry the observed resourceVersion, so two candidates can
 * never both win. Leadership lost means the process must stop writing: `onLost` is expected to exit.
 */
import { ApiError, resourcePath, Resources, type RestClient } from "./rest.js";

export interface LeaderElectionOptions {
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  onStartedLeading: () => void;
  onLost: () => void;
  log?: (msg: string) => void;
}

interface Lease {
  apiVersion: "coordination.k8s.io/v1";
  kind: "Lease";
  metadata: { name: string; namespace: string; resourceVersion?: string };
  spec: {
    holderIdentity?: string;
    leaseDurationSeconds?: number;
    acquireTime?: string;
    renewTime?: string;
    leaseTransitions?: number;
  };
}

const microTime = (d: Date): string => d.toISOString().replace("Z", "000Z");

export class LeaderElector {
  private observedRecord = "";
  private observedAt = 0;
  private leading = false;
  private stopped = false;
  private lastRenew = 0;
  private timer: NodeJS.Timeout | undefined;
  private attempt: Promise<void> | undefined;
  private readonly leaseMs: number;
  private readonly renewMs: number;
  private readonly retryMs: number;

  constructor(
    private readonly rest: RestClient,
    private readonly opts: LeaderElectionOptions,
  ) {
    this.leaseMs = opts.leaseDurationMs ?? 15_000;
    this.renewMs = opts.renewDeadlineMs ?? 10_000;
    this.retryMs = opts.retryPeriodMs ?? 2_000;
    if (!(this.leaseMs > this.renewMs && this.renewMs > 1.2 * this.retryMs)) {
      throw new Error("leader election needs leaseDuration > renewDeadline > 1.2 × retryPeriod");
    }
  }

  get isLeader(): boolean {
    return this.leading;
  }

  start(): void {
    this.run();
  }

  /** Stops campaigning; a leader gives the lease up so a successor need not wait for it to expire. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    // A renewal in flight could land after the release and hand the lease back to us until it
    // expires; let it finish first, so the release is the last write.
    await this.attempt;
    if (this.leading) {
      this.leading = false;
      await this.tryWrite(true).catch(() => undefined);
    }
  }

  private schedule(): void {
    if (this.stopped) return;
    const jitter = this.leading ? 1 : 1 + Math.random() * 0.2;
    this.timer = setTimeout(() => this.run(), this.retryMs * jitter);
  }

  private run(): void {
    this.attempt = this.tick().finally(() => (this.attempt = undefined));
  }

  private async tick(): Promise<void> {
    if (this.stopped) return;
    let ok = false;
    try {
      ok = await this.tryWrite(false);
    } catch (err) {
      this.opts.log?.(
        `lease ${this.opts.namespace}/${this.opts.name}: ${err instanceof Error ? err.message : String(err)}`,
      );
    }
    if (ok) {
      this.lastRenew = Date.now();
      if (!this.leading) {
        this.leading = true;
        if (!this.stopped) this.opts.onStartedLeading();
      }
    } else if (this.leading && Date.now() - this.lastRenew > this.renewMs) {
      this.leading = false;
      this.opts.onLost();
      return;
    }
    this.schedule();
  }

  private path(name?: string): string {
    return resourcePath(Resources.leases, this.opts.namespace, name);
  }

  /** One acquire-or-renew (or release) attempt; true when this candidate holds the lease after it. */
  private async tryWrite(release: boolean): Promise<boolean> {
    const now = new Date();
    const lease = await this.readLease();
    const spec: Lease["spec"] = {
      holderIdentity: release ? "" : this.opts.identity,
      leaseDurationSeconds: Math.ceil(this.leaseMs / 1000),
      acquireTime: microTime(now),
      renewTime: microTime(now),
      leaseTransitions: 0,
    };
    if (!lease) {
      if (release) return false;
      await this.rest.request("POST", this.path(), {
        body: {
          apiVersion: "coordination.k8s.io/v1",
          kind: "Lease",
          metadata: { name: this.opts.name, namespace: this.opts.namespace },
          spec,
        },
        timeoutMs: this.renewMs / 2,
      });
      return true;
    }
    if (!this.mayWrite(lease, release)) return false;
    if (lease.spec.holderIdentity === this.opts.identity) {
      spec.acquireTime = lease.spec.acquireTime;
      spec.leaseTransitions = lease.spec.leaseTransitions ?? 0;
    } else {
      spec.leaseTransitions = (lease.spec.leaseTransitions ?? 0) + 1;
    }
    return (await this.replaceLease(lease, spec)) && !release;
  }

  /** The lease, or undefined when there is none yet. */
  private async readLease(): Promise<Lease | undefined> {
    try {
      return await this.rest.request<Lease>("GET", this.path(this.opts.name), {
        timeoutMs: this.renewMs / 2,
      });
    } catch (err) {
      if (err instanceof ApiError && err.code === 404) return undefined;
      throw err;
    }
  }

  /**
   * Whether this candidate may write `lease` now: another holder's lease only once it has gone
   * unrenewed (unchanged, by our own clock) for a lease duration; a release only of our own.
   */
  private mayWrite(lease: Lease, release: boolean): boolean {
    const record = JSON.stringify(lease.spec);
    if (record !== this.observedRecord) {
      this.observedRecord = record;
      this.observedAt = Date.now();
    }
    const holder = lease.spec.holderIdentity ?? "";
    const heldByOther = holder !== "" && holder !== this.opts.identity;
    if (heldByOther && Date.now() - this.observedAt < this.leaseMs) return false;
    return !(release && holder !== this.opts.identity);
  }

  /** Writes `spec` over the lease as read; false when someone else wrote it since (409). */
  private async replaceLease(lease: Lease, spec: Lease["spec"]): Promise<boolean> {
    try {
      await this.rest.request("PUT", this.path(this.opts.name), {
        body: { ...lease, spec },
        timeoutMs: this.renewMs / 2,
      });
      return true;
    } catch (err) {
      if (err instanceof ApiError && err.code === 409) return false;
      throw err;
    }
  }
}
