/**
 * The routing table a gateway serves, and the pluggable source that supplies it. The controller
 * will implement `RoutingSource` from ServiceImports, EndpointSlices, Cluster objects and
 * TrafficPolicies; until then a static table or a JSON file (reloaded on change) feeds it.
 *
 * How a local client reaches the right route: every imported (service, port) gets its own port on
 * the gateway's local listen address (`listenPort`), so the import's EndpointSlice in this cluster
 * points at `<gateway pod IP>:<listenPort>` and any TCP client works unchanged — no proxy protocol
 * or header is needed from the client side.
 */
import { readFileSync, statSync } from "node:fs";
import type { AccessDefault, AccessEntry } from "./access.js";
import type { Locality, TrafficPolicySpec } from "./policy.js";
import { validatePolicy } from "./policy.js";
import { isServiceKey } from "./protocol.js";

/** What a route carries: TCP connections, or UDP flows (datagram.ts). */
export type RouteProtocol = "TCP" | "UDP";

export interface Endpoint {
  address: string;
  port: number;
  /** Default true; not-ready endpoints are kept so status can show them. */
  ready?: boolean;
}

export interface PeerGateway {
  clusterId: string;
  host: string;
  port: number;
  locality?: Locality;
}

/** A service this cluster consumes: what local clients connect to. */
export interface ImportRoute {
  /** `namespace/name`. */
  service: string;
  /** The service port clients asked for; sent to the remote gateway. */
  port: number;
  /** Default TCP. A UDP route listens for datagrams and carries each client address's flow as a stream. */
  protocol?: RouteProtocol;
  /** UDP only: this route's flow timeout instead of the gateway's `udpFlowIdleMs`. */
  udpFlowIdleMs?: number;
  /** Local listener for this (service, port); 0 lets the gateway pick (see `Gateway.listenPorts`). */
  listenPort: number;
  /**
   * Address of that listener instead of the gateway's `localListenHost`: the import's ClusterSetIP
   * where the gateway stands in for kube-proxy (the local clusterset).
   */
  listenHost?: string;
  /** Remote clusters exporting it, with how many ready endpoints each has. */
  clusters: Array<{ clusterId: string; readyEndpoints: number }>;
  /** This cluster's own endpoints of the service, reached directly without TLS. */
  localEndpoints?: Endpoint[];
  policy?: TrafficPolicySpec;
}

/** A service this cluster exports: what peer gateways may ask for. */
export interface ExportRoute {
  service: string;
  port: number;
  /** Default TCP. */
  protocol?: RouteProtocol;
  endpoints: Endpoint[];
  /** Who may consume it; undefined means the table's `accessDefault`. */
  allow?: AccessEntry[];
}

export interface RoutingTable {
  peers: PeerGateway[];
  imports: ImportRoute[];
  exports: ExportRoute[];
  /** Clusterset-wide default for exports without an `allow` list (default "allow"). */
  accessDefault?: AccessDefault;
}

export interface RoutingSource {
  current(): RoutingTable;
  /** Called with each new table; returns an unsubscribe function. */
  subscribe(listener: (table: RoutingTable) => void): () => void;
  start(): Promise<void>;
  stop(): void;
}

/**
 * A route's key and its metrics label: `namespace/name:port`, with `/UDP` after a UDP port's (a
 * Service may serve TCP and UDP on one port number, as DNS does).
 */
export const routeKey = (service: string, port: number, protocol?: RouteProtocol): string =>
  protocol === "UDP" ? `${service}:${port}/UDP` : `${service}:${port}`;

const PROTOCOLS = new Set<unknown>([undefined, "TCP", "UDP"]);

function checkEndpoints(eps: unknown, where: string, errors: string[]): void {
  if (!Array.isArray(eps)) return void errors.push(`${where}: must be a list`);
  eps.forEach((e: Partial<Endpoint>, i) => {
    if (typeof e?.address !== "string" || e.address === "") errors.push(`${where}[${i}].address: required`);
    if (!Number.isInteger(e?.port) || e.port! < 1 || e.port! > 65535)
      errors.push(`${where}[${i}].port: 1–65535`);
  });
}

/** A route's protocol, and a UDP flow timeout where it has one. */
function checkTransport(
  r: { protocol?: unknown; udpFlowIdleMs?: unknown },
  where: string,
  errors: string[],
): void {
  if (!PROTOCOLS.has(r.protocol)) errors.push(`${where}.protocol: must be TCP or UDP`);
  const idle = r.udpFlowIdleMs;
  if (idle !== undefined && !(typeof idle === "number" && Number.isFinite(idle) && idle > 0))
    errors.push(`${where}.udpFlowIdleMs: must be above 0`);
}

/** Checks a table from an untrusted source; returns the errors, each naming its field. */
export function validateRoutingTable(t: Partial<RoutingTable>): string[] {
  const errors: string[] = [];
  for (const field of ["peers", "imports", "exports"] as const) {
    if (!Array.isArray(t[field])) errors.push(`${field}: must be a list`);
  }
  if (errors.length > 0) return errors;
  const peerIds = new Set<string>();
  t.peers!.forEach((p, i) => {
    if (typeof p.clusterId !== "string" || p.clusterId === "") errors.push(`peers[${i}].clusterId: required`);
    if (peerIds.has(p.clusterId)) errors.push(`peers[${i}].clusterId: duplicate "${p.clusterId}"`);
    peerIds.add(p.clusterId);
    if (typeof p.host !== "string" || p.host === "") errors.push(`peers[${i}].host: required`);
    if (!Number.isInteger(p.port) || p.port < 1 || p.port > 65535) errors.push(`peers[${i}].port: 1–65535`);
  });
  const seen = new Set<string>();
  t.imports!.forEach((r, i) => {
    const where = `imports[${i}]`;
    if (!isServiceKey(r.service)) errors.push(`${where}.service: must be namespace/name`);
    if (!Number.isInteger(r.port) || r.port < 1 || r.port > 65535) errors.push(`${where}.port: 1–65535`);
    if (!Number.isInteger(r.listenPort) || r.listenPort < 0 || r.listenPort > 65535)
      errors.push(`${where}.listenPort: 0–65535`);
    checkTransport(r, where, errors);
    const key = routeKey(r.service, r.port, r.protocol);
    if (seen.has(key)) errors.push(`${where}: duplicate ${key}`);
    seen.add(key);
    if (!Array.isArray(r.clusters)) errors.push(`${where}.clusters: must be a list`);
    if (r.localEndpoints !== undefined) checkEndpoints(r.localEndpoints, `${where}.localEndpoints`, errors);
    if (r.policy) errors.push(...validatePolicy(r.policy).map((e) => `${where}.policy.${e}`));
  });
  const listeners = t
    .imports!.filter((r) => r.listenPort !== 0)
    .map((r) => `${r.protocol ?? "TCP"} ${r.listenHost ?? ""}:${r.listenPort}`);
  if (new Set(listeners).size !== listeners.length) errors.push("imports: two routes share a listenPort");
  t.exports!.forEach((r, i) => {
    const where = `exports[${i}]`;
    if (!isServiceKey(r.service)) errors.push(`${where}.service: must be namespace/name`);
    if (!Number.isInteger(r.port) || r.port < 1 || r.port > 65535) errors.push(`${where}.port: 1–65535`);
    checkTransport(r, where, errors);
    checkEndpoints(r.endpoints, `${where}.endpoints`, errors);
  });
  if (t.accessDefault !== undefined && t.accessDefault !== "allow" && t.accessDefault !== "deny")
    errors.push(`accessDefault: must be "allow" or "deny"`);
  return errors;
}

/** A table that changes only when told to (tests, embedding). */
export class StaticRoutingSource implements RoutingSource {
  private readonly listeners = new Set<(t: RoutingTable) => void>();

  constructor(private table: RoutingTable) {
    const errors = validateRoutingTable(table);
    if (errors.length > 0) throw new Error(`invalid routing table: ${errors.join("; ")}`);
  }

  current(): RoutingTable {
    return this.table;
  }

  set(table: RoutingTable): void {
    const errors = validateRoutingTable(table);
    if (errors.length > 0) throw new Error(`invalid routing table: ${errors.join("; ")}`);
    this.table = table;
    for (const l of this.listeners) l(table);
  }

  subscribe(listener: (t: RoutingTable) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  start(): Promise<void> {
    return Promise.resolve();
  }

  stop(): void {}
}

/**
 * A JSON file, re-read when its mtime changes. An invalid new version is reported and ignored:
 * the gateway keeps routing with the last good table rather than dropping every route.
 */
export class JsonFileRoutingSource extends StaticRoutingSource {
  private timer: NodeJS.Timeout | undefined;
  private mtime = 0;

  constructor(
    private readonly file: string,
    private readonly pollMs = 2000,
    private readonly onError: (err: Error) => void = () => {},
  ) {
    super(JsonFileRoutingSource.read(file));
    this.mtime = statSync(file).mtimeMs;
  }

  static read(file: string): RoutingTable {
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(file, "utf8"));
    } catch (err) {
      throw new Error(`routes file ${file}: ${(err as Error).message}`, { cause: err });
    }
    const errors = validateRoutingTable(parsed as Partial<RoutingTable>);
    if (errors.length > 0) throw new Error(`routes file ${file}: ${errors.join("; ")}`);
    return parsed as RoutingTable;
  }

  override start(): Promise<void> {
    this.timer = setInterval(() => {
      try {
        const mtime = statSync(this.file).mtimeMs;
        if (mtime === this.mtime) return;
        this.mtime = mtime;
        this.set(JsonFileRoutingSource.read(this.file));
      } catch (err) {
        this.onError(err as Error);
      }
    }, this.pollMs);
    this.timer.unref();
    return Promise.resolve();
  }

  override stop(): void {
    if (this.timer) clearInterval(this.timer);
  }
}
