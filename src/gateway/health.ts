/**
 * Health of peer gateways and of (cluster, service) pairs, from two signals:
 * - active: probes on a jittered ticker; `unhealthyAfter` failed probes in a row take a peer out,
 *   one success brings it back;
 * - passive: connect failures seen by real traffic; `consecutiveFailures` in a row eject the key for
 *   an exponentially growing time (base × 2^(n−1), capped), a success clears the count.
 * Pure apart from the injected clock, so tests drive time by hand.
 *
 * A peer never probed yet counts as healthy: refusing traffic until the first probe answers is
 * the fail-fast-after-restart bug Linkerd users hit (linkerd2#8590).
 */

export interface HealthOptions {
  unhealthyAfter?: number;
  consecutiveFailures?: number;
  baseEjectionMs?: number;
  maxEjectionMs?: number;
  clock?: () => number;
}

export type ProbeState = "unknown" | "healthy" | "unhealthy";

interface KeyState {
  probe: ProbeState;
  probeFailures: number;
  rttMs?: number;
  lastProbeAt?: number;
  connectFailures: number;
  ejections: number;
  ejectedUntil: number;
}

export interface HealthSnapshot {
  probe: ProbeState;
  available: boolean;
  rttMs?: number;
  ejectedForMs: number;
  consecutiveFailures: number;
}

export class HealthTracker {
  private readonly keys = new Map<string, KeyState>();
  private readonly clock: () => number;
  readonly unhealthyAfter: number;
  readonly consecutiveFailures: number;
  readonly baseEjectionMs: number;
  readonly maxEjectionMs: number;

  constructor(o: HealthOptions = {}) {
    this.clock = o.clock ?? Date.now;
    this.unhealthyAfter = o.unhealthyAfter ?? 2;
    this.consecutiveFailures = o.consecutiveFailures ?? 3;
    this.baseEjectionMs = o.baseEjectionMs ?? 5000;
    this.maxEjectionMs = o.maxEjectionMs ?? 60_000;
  }

  private state(key: string): KeyState {
    let s = this.keys.get(key);
    if (!s) {
      s = { probe: "unknown", probeFailures: 0, connectFailures: 0, ejections: 0, ejectedUntil: 0 };
      this.keys.set(key, s);
    }
    return s;
  }

  /** Records an active probe of a peer gateway. A success also lifts a passive ejection. */
  probeResult(key: string, ok: boolean, rttMs?: number): void {
    const s = this.state(key);
    s.lastProbeAt = this.clock();
    if (ok) {
      s.probe = "healthy";
      s.probeFailures = 0;
      s.rttMs = rttMs;
      s.ejectedUntil = 0;
      s.connectFailures = 0;
      return;
    }
    s.probeFailures++;
    if (s.probeFailures >= this.unhealthyAfter) s.probe = "unhealthy";
  }

  /**
   * Records the outcome of a real connection attempt. `definitive` failures (the peer said it has
   * no endpoints) eject at once instead of waiting for the threshold.
   */
  connectResult(key: string, ok: boolean, definitive = false): void {
    const s = this.state(key);
    if (ok) {
      s.connectFailures = 0;
      if (this.clock() >= s.ejectedUntil) s.ejections = 0;
      return;
    }
    s.connectFailures++;
    if (definitive || s.connectFailures >= this.consecutiveFailures) {
      s.ejections++;
      const duration = Math.min(this.maxEjectionMs, this.baseEjectionMs * 2 ** (s.ejections - 1));
      s.ejectedUntil = this.clock() + duration;
      s.connectFailures = 0;
    }
  }

  available(key: string): boolean {
    const s = this.keys.get(key);
    if (!s) return true;
    return s.probe !== "unhealthy" && this.clock() >= s.ejectedUntil;
  }

  snapshot(key: string): HealthSnapshot {
    const s = this.state(key);
    return {
      probe: s.probe,
      available: this.available(key),
      ...(s.rttMs !== undefined ? { rttMs: s.rttMs } : {}),
      ejectedForMs: Math.max(0, s.ejectedUntil - this.clock()),
      consecutiveFailures: s.connectFailures,
    };
  }

  forget(key: string): void {
    this.keys.delete(key);
  }

  /** Forgets every key starting with `prefix` (e.g. all services of one peer). */
  forgetPrefix(prefix: string): void {
    for (const key of this.keys.keys()) if (key.startsWith(prefix)) this.keys.delete(key);
  }

  /** Whether the last probe of `key` failed enough times to take it out. */
  isProbeUnhealthy(key: string): boolean {
    return this.keys.get(key)?.probe === "unhealthy";
  }
}

/** The next delay of a jittered ticker: `interval` ± `jitter` (fraction), so peers do not probe in lockstep. */
export function jitteredDelay(intervalMs: number, jitter = 0.2, random: () => number = Math.random): number {
  return Math.max(1, Math.round(intervalMs * (1 - jitter + 2 * jitter * random())));
}
