/**
 * How many proxied connections the process's open-file limit leaves room for. Every proxied
 * connection holds a descriptor (the client's socket on the importing gateway, the endpoint's on
 * the exporting one) and, with a connection per stream (`--multiplex 0` on the importing side, or
 * a peer that does not multiplex), a peer connection too, which idles between streams and still
 * holds its descriptor.
 * A gateway that runs out of descriptors fails accepts and connects at random, so it refuses
 * connections at this budget instead, counted like any limit. Node raises its soft limit to the
 * hard one as it starts, so the hard limit is the one that counts.
 */
import { readFileSync } from "node:fs";

export interface OpenFileLimit {
  soft: number;
  /** Undefined when unlimited. */
  hard: number | undefined;
}

/** The "Max open files" line of /proc/<pid>/limits; undefined when absent or unlimited. */
export function parseOpenFileLimit(procLimits: string): OpenFileLimit | undefined {
  const m = /^Max open files\s+(\S+)\s+(\S+)/m.exec(procLimits);
  if (!m) return undefined;
  const soft = Number(m[1]);
  if (!Number.isInteger(soft)) return undefined;
  const hard = Number(m[2]);
  return { soft, hard: Number.isInteger(hard) ? hard : undefined };
}

/** This process's limit (Linux); undefined where /proc does not tell. */
export function readOpenFileLimit(): OpenFileLimit | undefined {
  try {
    return parseOpenFileLimit(readFileSync("/proc/self/limits", "utf8"));
  } catch {
    return undefined;
  }
}

/**
 * Descriptors kept back for everything that is not a proxied connection: listeners (one per
 * imported port), multiplexed peer connections and dials in progress, API watches, metrics
 * scrapes, logs. Idle connections of a stream each count against the budget instead.
 */
export function reservedDescriptors(soft: number): number {
  return Math.min(1024, Math.floor(soft / 4));
}

/** Descriptors that proxied connections may hold, both directions together. */
export function descriptorBudget(soft: number): number {
  return soft - reservedDescriptors(soft);
}

/**
 * Descriptors a proxied connection holds: its socket on this side (none for a UDP flow on the
 * importing gateway, whose flows share the listener's socket), and a peer connection of its own
 * unless it travels as a channel of a multiplexed one.
 */
export function descriptorsHeld(ownSocket: boolean, multiplexed: boolean): number {
  return (ownSocket ? 1 : 0) + (multiplexed ? 0 : 1);
}

/** Proxied TCP connections, both directions together, that `soft` descriptors leave room for. */
export function connectionBudget(soft: number, multiplex: number): number {
  return Math.floor(descriptorBudget(soft) / descriptorsHeld(true, multiplex > 0));
}

/** The gateway's default for connections per direction: 20,000, or fewer if the limit is lower. */
export const DEFAULT_MAX_CONNECTIONS = 20_000;

/** A warning when `--max-connections` asks for more than the limit leaves room for. */
export function maxConnectionsWarning(
  limit: OpenFileLimit,
  budget: number,
  requestedMaxConnections: number | undefined,
): string | undefined {
  if (requestedMaxConnections === undefined || requestedMaxConnections <= budget) return undefined;
  return (
    `--max-connections ${requestedMaxConnections} is more than the open-file limit (${limit.soft}) leaves ` +
    `room for: connections beyond ${budget} in both directions together are refused; raise the limit ` +
    `(the hard one: Node raises its soft limit to it at start) or lower --max-connections`
  );
}

/** Which limit refused a proxied connection: `--max-connections`, or the open-file budget. */
export type LimitCause = "max-connections" | "open-files";

/**
 * What the open-file limit sets: the default for connections per direction, the descriptor
 * budget, which limit a refusal at the connection limit is due to (the open-file limit, when it
 * is what lowered the default), and a warning for a `--max-connections` it cannot hold.
 */
export function openFileLimits(
  limit: OpenFileLimit | undefined,
  multiplex: number,
  requestedMaxConnections: number | undefined,
): { maxConnections: number; descriptorBudget: number; maxConnectionsCause: LimitCause; warning?: string } {
  const soft = limit?.soft ?? Number.POSITIVE_INFINITY;
  const fitting = connectionBudget(soft, multiplex);
  const warning = limit && maxConnectionsWarning(limit, fitting, requestedMaxConnections);
  return {
    maxConnections: Math.min(DEFAULT_MAX_CONNECTIONS, fitting),
    descriptorBudget: descriptorBudget(soft),
    maxConnectionsCause:
      requestedMaxConnections === undefined && fitting < DEFAULT_MAX_CONNECTIONS
        ? "open-files"
        : "max-connections",
    ...(warning ? { warning } : {}),
  };
}

/** Idle connections of a stream each, somewhere in the gateway: they hold descriptors too. */
export interface IdleConnections {
  readonly idleCount: number;
  /** Closes up to `n` of them; returns how many it closed. */
  closeIdle(n: number): number;
}

/**
 * The descriptors proxied streams hold, kept within `limit` together with the idle connections
 * of a stream each (a cache: as many of them close as a stream needs room for, in the order
 * `idleSources` lists them).
 */
export class DescriptorBudget {
  private held = 0;

  constructor(
    readonly limit: number,
    private readonly idleSources: () => readonly IdleConnections[],
  ) {}

  /** Descriptors the streams hold. */
  get streams(): number {
    return this.held;
  }

  /** Descriptors the idle connections hold. */
  get idle(): number {
    return idleIn(this.idleSources());
  }

  /** Whether `n` more fit, once idle connections have closed to make room; takes nothing. */
  fits(n: number): boolean {
    if (this.held + n > this.limit) return false;
    const sources = this.idleSources();
    let over = this.held + n + idleIn(sources) - this.limit;
    for (const source of sources) {
      if (over <= 0) break;
      over -= source.closeIdle(over);
    }
    return true;
  }

  /** Whether one more idle connection may be kept (a pool's warm dial, say). */
  get roomForIdle(): boolean {
    return this.held + this.idle < this.limit;
  }

  take(n: number): void {
    this.held += n;
  }

  release(n: number): void {
    this.held -= n;
  }
}

function idleIn(sources: readonly IdleConnections[]): number {
  let idle = 0;
  for (const source of sources) idle += source.idleCount;
  return idle;
}

/** Idle connections kept in a set by whoever waits on them; closing one destroys it and forgets it. */
export class IdleSet<T extends { destroy(): void }> implements IdleConnections {
  private readonly items = new Set<T>();

  get idleCount(): number {
    return this.items.size;
  }

  add(item: T): void {
    this.items.add(item);
  }

  delete(item: T): void {
    this.items.delete(item);
  }

  closeIdle(n: number): number {
    let closed = 0;
    for (const item of this.items) {
      if (closed >= n) break;
      this.items.delete(item);
      item.destroy();
      closed++;
    }
    return closed;
  }
}
