/**
 * The east-west gateway process: sockets and timers around the pure modules.
 *
 *   local client ──TCP──▶ local listener (one port per imported service port; a UDP port's
 *                         flows are streams too, datagram.ts)
 *        │ policy.ts picks a cluster (health.ts says who is usable)
 *        ├─ this cluster ──TCP──▶ local endpoint                (no TLS hop)
 *        └─ pool.ts: warm mTLS connection ──▶ peer gateway's peer listener
 *                      OPEN service:port ──▶ trust.ts (who is it?) access.ts (may it?) ──▶ endpoint
 *                      ◀── REPLY ok, then framed bytes both ways (tunnel.ts)
 */
import net from "node:net";
import type { Duplex } from "node:stream";
import tls from "node:tls";
import type { SecureContext, TLSSocket } from "node:tls";
import type { Logger } from "../observability/logger.js";
import { createLogger } from "../observability/logger.js";
import { decideAccess } from "./access.js";
import type { LimitCause, OpenFileLimit } from "./file-limit.js";
import {
  DescriptorBudget,
  descriptorsHeld,
  IdleSet,
  openFileLimits,
  readOpenFileLimit,
} from "./file-limit.js";
import { connectDatagram, DatagramListener } from "./datagram.js";
import type { HealthSnapshot } from "./health.js";
import { HealthTracker, jitteredDelay } from "./health.js";
import type { IdentitySource } from "./identity.js";
import { GatewayMetrics, type StreamSums } from "./metrics.js";
import { MUX_ALPN, MuxChannel, MuxConnection } from "./mux.js";
import type { Locality, RoutedCluster, Tier } from "./policy.js";
import { computeTiers, effectiveRouting, WeightedPicker } from "./policy.js";
import type { PoolOptions } from "./pool.js";
import { PeerConnector, PeerRefusedError } from "./pool.js";
import type { OpenRequest, ReplyStatusName } from "./protocol.js";
import { decodeOpen, encodeOpen, MAX_OPEN_LENGTH, REPLY_NAMES, ReplyStatus, VERSION } from "./protocol.js";
import type {
  Endpoint,
  ExportRoute,
  ImportRoute,
  PeerGateway,
  RouteProtocol,
  RoutingSource,
  RoutingTable,
} from "./routes.js";
import { routeKey } from "./routes.js";
import type { SourceNamespaces } from "./source-namespaces.js";
import type { PeerCertificateFacts, PeerIdentity } from "./trust.js";
import { classifyPeer, PeerVerdicts } from "./trust.js";
import type { BridgeResult, EarlyData, PlainSocket } from "./tunnel.js";
import { bridge, pipeBoth, readFrom, skipStream } from "./tunnel.js";

export interface GatewayLimits {
  /** Proxied connections at once, per direction (default 20,000, or the connection budget if lower). */
  maxConnections: number;
  /**
   * File descriptors proxied connections may hold at once, both directions together: what the
   * open-file limit leaves after a reserve (default from this process's limit,
   * `src/gateway/file-limit.ts`; unbounded where the limit is unknown). A connection holds one
   * for its socket on this side and one more for a peer connection of its own (not multiplexed).
   */
  descriptorBudget: number;
  /** A connection with no bytes either way for this long is closed (default 1 h, like kube-proxy's conntrack). */
  idleTimeoutMs: number;
  /** Dialing a peer gateway or an endpoint (default 3 s). */
  connectTimeoutMs: number;
  /** An authenticated peer connection may sit between streams this long (default 60 s, > pool TTL). */
  peerIdleMs: number;
  /** Connection attempts (clusters/endpoints) per client connection (default 3). */
  maxAttempts: number;
  /**
   * A UDP flow (a client address to an imported port) ends after this long without a datagram
   * either way (default 30 s, like conntrack's UDP timeout); its next datagram starts a new flow.
   */
  udpFlowIdleMs: number;
}

export interface ProbeOptions {
  intervalMs: number;
  timeoutMs: number;
  unhealthyAfter: number;
}

export interface GatewayOptions {
  clusterId: string;
  locality?: Locality;
  identity: IdentitySource;
  routes: RoutingSource;
  peerListen: { host: string; port: number };
  /** Address of the per-service local listeners. */
  localListenHost: string;
  /** Makes a route's own `listenHost` an address of this host before listening on it. */
  prepareListenHost?: (host: string) => Promise<void>;
  /**
   * The namespace of a local client, by its address (a pod of this cluster), sent to the peer for
   * namespace-scoped access rules; unknown addresses send none, and such rules then refuse.
   */
  sourceNamespaces?: SourceNamespaces;
  limits?: Partial<GatewayLimits>;
  /** Includes `multiplex`: channels over that many connections per peer (default 0: a connection per stream). */
  pool?: Partial<PoolOptions>;
  /**
   * Offer multiplexing (ALPN) to importing gateways that ask for it (default true); false answers
   * like a gateway from before multiplexing, which such peers serve with a connection per stream.
   */
  acceptMultiplex?: boolean;
  probe?: Partial<ProbeOptions>;
  outlier?: { consecutiveFailures?: number; baseEjectionMs?: number; maxEjectionMs?: number };
  logger?: Logger;
  metrics?: GatewayMetrics;
  clock?: () => number;
  /** This process's open-file limit (default: read from /proc); sets the connection budget. */
  openFileLimit?: OpenFileLimit;
}

export type { LimitCause } from "./file-limit.js";

/** The limits this gateway refused connections at lately, per direction. */
export interface AtLimit {
  outbound?: LimitCause;
  inbound?: LimitCause;
}

/** How long a refusal at a limit keeps the gateway reported as at that limit. */
export const AT_LIMIT_MS = 10_000;

/** One imported (service, port) as `status` shows it. */
export interface ServiceRouting {
  service: string;
  port: number;
  /** Only for UDP: TCP is the default. */
  protocol?: "UDP";
  listenPort: number | undefined;
  clusters: Array<RoutedCluster & { readyEndpoints: number; health: HealthSnapshot }>;
}

interface ImportState {
  route: ImportRoute;
  tiers: Tier[];
  picker: WeightedPicker;
  server?: net.Server;
  /** A UDP route's socket, instead of `server`. */
  datagrams?: DatagramListener;
  listenPort?: number;
}

interface EndpointCursor {
  next: number;
}

/** Passive health of a service (its TCP or its UDP ports) in a cluster. */
const serviceKey = (clusterId: string, route: ImportRoute): string =>
  route.protocol === "UDP" ? `${clusterId}/${route.service}/UDP` : `${clusterId}/${route.service}`;
const endpointKey = (e: Endpoint): string => `ep:${e.address}:${e.port}`;

export class Gateway {
  readonly metrics: GatewayMetrics;
  readonly health: HealthTracker;
  private readonly log: Logger;
  private readonly limits: GatewayLimits;
  /** Said once the gateway has started: a `--max-connections` the open-file limit cannot honour. */
  private readonly fileLimitWarning: string | undefined;
  private readonly probeOptions: ProbeOptions;
  private readonly poolOptions: PoolOptions;
  private readonly clock: () => number;
  private secureContext: SecureContext | undefined;
  private peerServer: tls.Server | undefined;
  private readonly imports = new Map<string, ImportState>();
  private exports = new Map<string, ExportRoute>();
  private readonly connectors = new Map<string, PeerConnector>();
  private readonly probeTimers = new Map<string, NodeJS.Timeout>();
  private readonly cursors = new Map<string, EndpointCursor>();
  private table: RoutingTable = { peers: [], imports: [], exports: [] };
  private applying: Promise<void> = Promise.resolve();
  private unsubscribe: (() => void) | undefined;
  private draining = false;
  private outbound = 0;
  private inbound = 0;
  /** What sets `limits.maxConnections`: the flag, or (by default) what the open-file limit fits. */
  private readonly maxConnectionsCause: LimitCause;
  /** The last refusal at a limit, per direction, for `atLimit`. */
  private readonly lastLimit: Record<keyof AtLimit, { at: number; cause: LimitCause } | undefined> = {
    outbound: undefined,
    inbound: undefined,
  };
  /** Descriptors the proxied connections of both directions hold (`descriptorsHeld`), and the idle ones. */
  private readonly descriptors: DescriptorBudget;
  /** Every socket we hold, so drain can wait for them and then cut the rest. */
  private readonly activeSockets = new Set<Duplex>();
  /** Peer connections waiting between streams: closed at once on drain. */
  private readonly idlePeerSockets = new Set<Duplex>();
  /** The ones of `idlePeerSockets` that are connections of their own, not channels: they hold a descriptor. */
  private readonly idleServedConnections = new IdleSet<Duplex>();
  private readonly closeHooked = new WeakSet<Duplex>();
  /** Every accepted peer connection, whatever its state, so stop() leaves none behind. */
  private readonly peerSockets = new Set<net.Socket>();
  /** Passive health of (cluster, service): a peer saying "no endpoints" is cheap to re-ask, so short ejections. */
  private readonly serviceHealth: HealthTracker;
  private readonly verdicts = new PeerVerdicts();
  private readonly openByRoute = new WeakMap<ImportRoute, Buffer>();

  constructor(private readonly o: GatewayOptions) {
    this.clock = o.clock ?? Date.now;
    this.metrics = o.metrics ?? new GatewayMetrics();
    this.log = o.logger ?? createLogger("gateway");
    const fromFiles = openFileLimits(
      "openFileLimit" in o ? o.openFileLimit : readOpenFileLimit(),
      o.pool?.multiplex ?? 0,
      o.limits?.maxConnections,
    );
    this.fileLimitWarning = fromFiles.warning;
    this.maxConnectionsCause = fromFiles.maxConnectionsCause;
    this.limits = {
      maxConnections: fromFiles.maxConnections,
      descriptorBudget: fromFiles.descriptorBudget,
      idleTimeoutMs: 3_600_000,
      connectTimeoutMs: 3000,
      peerIdleMs: 60_000,
      maxAttempts: 3,
      udpFlowIdleMs: 30_000,
      ...o.limits,
    };
    this.probeOptions = { intervalMs: 1000, timeoutMs: 1000, unhealthyAfter: 2, ...o.probe };
    this.poolOptions = {
      warm: 4,
      maxIdle: 512,
      idleTtlMs: 30_000,
      connectTimeoutMs: this.limits.connectTimeoutMs,
      ...o.pool,
    };
    // This gateway's own pools close first: a peer whose connection we close redials.
    this.descriptors = new DescriptorBudget(this.limits.descriptorBudget, () => [
      ...this.connectors.values(),
      this.idleServedConnections,
    ]);
    this.metrics.watchDescriptors(() => ({
      streams: this.descriptors.streams,
      idle: this.descriptors.idle,
      budget: this.descriptors.limit,
    }));
    this.serviceHealth = new HealthTracker({
      baseEjectionMs: 1000,
      maxEjectionMs: 10_000,
      clock: this.clock,
    });
    this.health = new HealthTracker({
      unhealthyAfter: this.probeOptions.unhealthyAfter,
      consecutiveFailures: o.outlier?.consecutiveFailures,
      baseEjectionMs: o.outlier?.baseEjectionMs,
      maxEjectionMs: o.outlier?.maxEjectionMs,
      clock: this.clock,
    });
  }

  get clusterId(): string {
    return this.o.clusterId;
  }

  /** The port peer gateways connect to. */
  get peerPort(): number {
    return (this.peerServer?.address() as net.AddressInfo | null)?.port ?? 0;
  }

  /** Bound local port per `namespace/name:port`. */
  listenPorts(): Map<string, number> {
    const out = new Map<string, number>();
    for (const [key, s] of this.imports) if (s.listenPort !== undefined) out.set(key, s.listenPort);
    return out;
  }

  async start(): Promise<void> {
    const { identity } = this.o;
    await identity.start();
    this.secureContext = this.buildContext();
    identity.onChange(() => this.onIdentityChange());
    const creds = identity.credentials();
    this.peerServer = tls.createServer({
      key: creds.privateKeyPem,
      cert: creds.certPem,
      ca: identity.bundle().caPems,
      minVersion: "TLSv1.3",
      requestCert: true,
      // Verified in onPeerConnection so each refusal is classified and counted.
      rejectUnauthorized: false,
      allowHalfOpen: true,
      // Offered to importing gateways that multiplex; others send no ALPN and get a stream per connection.
      ...(this.o.acceptMultiplex === false ? {} : { ALPNProtocols: [MUX_ALPN] }),
    });
    this.peerServer.on("connection", (raw: net.Socket) => {
      // Tracked from the TCP accept on, so a connection stuck in its handshake cannot hold up stop().
      this.peerSockets.add(raw);
      raw.setNoDelay(true); // on the TCP socket: the TLSSocket's setNoDelay does not reach it
      raw.setKeepAlive(true, 30_000);
      raw.once("close", () => this.peerSockets.delete(raw));
    });
    this.peerServer.on("secureConnection", (s: TLSSocket) => this.onPeerConnection(s));
    this.peerServer.on("tlsClientError", (err: Error & { code?: string }, s: TLSSocket) => {
      this.metrics.handshakes.inc({ role: "server", result: "handshake-failed", resumed: "false" });
      this.metrics.refusals.inc({ reason: "handshake-failed", cluster: "", service: "" });
      this.log.warn({ err: err.code ?? err.message, remote: s.remoteAddress }, "peer TLS handshake failed");
    });
    await listen(this.peerServer, this.o.peerListen.port, this.o.peerListen.host, this.log);
    this.unsubscribe = this.o.routes.subscribe((t) => void this.apply(t));
    await this.apply(this.o.routes.current());
    this.log.info(
      {
        cluster: this.o.clusterId,
        peerPort: this.peerPort,
        maxConnections: this.limits.maxConnections,
        descriptorBudget: this.limits.descriptorBudget,
      },
      "gateway started",
    );
    if (this.fileLimitWarning) this.log.warn(this.fileLimitWarning);
  }

  /**
   * Graceful drain: stop accepting, close idle peer connections, let in-flight connections finish
   * for up to `deadlineMs`, then cut what is left. Resolves when nothing is open.
   */
  async stop(deadlineMs = 10_000): Promise<{ cut: number }> {
    this.draining = true;
    this.unsubscribe?.();
    for (const t of this.probeTimers.values()) clearTimeout(t);
    this.probeTimers.clear();
    for (const s of this.imports.values()) s.datagrams?.close();
    const closing = [...this.imports.values()].map((s) => closeServer(s.server));
    closing.push(closeServer(this.peerServer));
    for (const s of this.idlePeerSockets) s.destroy();
    for (const c of this.connectors.values()) c.close();
    const deadline = this.clock() + deadlineMs;
    while (this.activeSockets.size > 0 && this.clock() < deadline) await sleep(20);
    const cut = this.activeSockets.size;
    for (const s of this.activeSockets) s.destroy();
    for (const s of this.peerSockets) s.destroy();
    await Promise.all(closing);
    this.o.identity.stop();
    this.log.info({ cut }, "gateway stopped");
    return { cut };
  }

  /** Current routing of every imported service: tiers, weights, shares and health. */
  routing(): ServiceRouting[] {
    return [...this.imports.entries()].map(([, s]) => {
      const usable = this.usable(s.route);
      const ready = new Map(s.route.clusters.map((c) => [c.clusterId, c.readyEndpoints]));
      ready.set(this.o.clusterId, this.readyLocal(s.route));
      return {
        service: s.route.service,
        port: s.route.port,
        ...(s.route.protocol === "UDP" ? { protocol: "UDP" as const } : {}),
        listenPort: s.listenPort,
        clusters: effectiveRouting(s.tiers, usable).map((r) => ({
          ...r,
          readyEndpoints: ready.get(r.clusterId) ?? 0,
          health: this.health.snapshot(r.clusterId),
        })),
      };
    });
  }

  /** The limits this gateway refused proxied connections at within the last `AT_LIMIT_MS`. */
  atLimit(): AtLimit {
    const now = this.clock();
    const recent = (direction: keyof AtLimit) => {
      const last = this.lastLimit[direction];
      return last && now - last.at < AT_LIMIT_MS ? { [direction]: last.cause } : {};
    };
    return { ...recent("outbound"), ...recent("inbound") };
  }

  /** Health of every peer gateway in the routing table. */
  peerHealth(): Array<{ clusterId: string } & HealthSnapshot> {
    return this.table.peers
      .filter((p) => p.clusterId !== this.o.clusterId)
      .map((p) => ({ clusterId: p.clusterId, ...this.health.snapshot(p.clusterId) }));
  }

  /** Probes one peer now (also run on the jittered ticker); resolves with the RTT or undefined. */
  async probe(clusterId: string): Promise<number | undefined> {
    const connector = this.connectors.get(clusterId);
    if (!connector) return undefined;
    const started = process.hrtime.bigint();
    try {
      let timedOut = false;
      const acquiring = connector.acquire();
      // A connection that arrives after the probe gave up goes back to the pool, not nowhere.
      acquiring.then((late) => timedOut && connector.release(late.socket, false)).catch(() => {});
      const { socket } = await withTimeout(acquiring, this.probeOptions.timeoutMs, "probe connect").catch(
        (err: unknown) => {
          timedOut = true;
          throw err;
        },
      );
      try {
        socket.write(encodeOpen({ kind: "probe", service: "", port: 0 }));
        const { status } = await readReply(socket, this.probeOptions.timeoutMs);
        if (status !== "ok") throw new Error(`probe answered ${status}`);
        connector.release(socket, false);
      } catch (err) {
        socket.destroy();
        throw err;
      }
      const rtt = Number(process.hrtime.bigint() - started) / 1e6;
      // A peer coming back from unhealthy is a restarted or reconnected gateway: what it said
      // before about its services (e.g. "no endpoints") no longer holds.
      if (this.health.isProbeUnhealthy(clusterId)) this.serviceHealth.forgetPrefix(`${clusterId}/`);
      this.health.probeResult(clusterId, true, rtt);
      this.metrics.probeRtt.observe({ cluster: clusterId }, rtt / 1000);
      this.metrics.probes.inc({ cluster: clusterId, result: "ok" });
      return rtt;
    } catch (err) {
      this.health.probeResult(clusterId, false);
      this.metrics.probes.inc({ cluster: clusterId, result: "failed" });
      this.log.debug({ peer: clusterId, err: (err as Error).message }, "probe failed");
      return undefined;
    } finally {
      this.metrics.peerUp.set({ cluster: clusterId }, this.health.available(clusterId) ? 1 : 0);
      this.updateShares();
    }
  }

  private buildContext(): SecureContext {
    const creds = this.o.identity.credentials();
    return tls.createSecureContext({
      key: creds.privateKeyPem,
      cert: creds.certPem,
      ca: this.o.identity.bundle().caPems,
      minVersion: "TLSv1.3",
    });
  }

  /** New credentials or trust: new connections use them, existing ones are left alone. */
  private onIdentityChange(): void {
    if (!this.peerServer) return;
    const creds = this.o.identity.credentials();
    this.secureContext = this.buildContext();
    this.peerServer.setSecureContext({
      key: creds.privateKeyPem,
      cert: creds.certPem,
      ca: this.o.identity.bundle().caPems,
      minVersion: "TLSv1.3",
    });
    // Idle pooled connections were authenticated under the old trust; redial under the new one.
    for (const c of this.connectors.values()) {
      c.flush();
      c.refill();
    }
    this.log.info(
      { serial: creds.serial, notAfter: new Date(creds.notAfter).toISOString() },
      "credentials changed",
    );
  }

  private apply(table: RoutingTable): Promise<void> {
    this.applying = this.applying
      .then(() => this.applyNow(table))
      .catch((err: unknown) => {
        this.log.error({ err }, "applying the routing table failed");
      });
    return this.applying;
  }

  private async applyNow(table: RoutingTable): Promise<void> {
    if (this.draining) return;
    this.table = table;
    this.exports = new Map(table.exports.map((e) => [routeKey(e.service, e.port, e.protocol), e]));
    this.applyPeers(table.peers);
    const wanted = new Map(table.imports.map((r) => [routeKey(r.service, r.port, r.protocol), r]));
    this.closeStaleListeners(wanted);
    for (const [key, route] of wanted) {
      const tiers = this.tiersOf(route, table.peers);
      const existing = this.imports.get(key);
      if (existing) {
        existing.route = route;
        existing.tiers = tiers;
        continue;
      }
      const state: ImportState = { route, tiers, picker: new WeightedPicker() };
      this.imports.set(key, state);
      await this.openListener(state);
    }
    this.updateShares();
  }

  /** Imports that are gone, or whose listening address changed: their listeners close. */
  private closeStaleListeners(wanted: Map<string, ImportRoute>): void {
    for (const [key, state] of this.imports) {
      const next = wanted.get(key);
      if (
        !next ||
        (next.listenPort !== 0 && next.listenPort !== state.listenPort) ||
        next.listenHost !== state.route.listenHost
      ) {
        // Connections already accepted keep running; only the listener goes. A UDP route's flows
        // end with its socket, which they send through.
        void closeServer(state.server);
        state.datagrams?.close();
        this.imports.delete(key);
      }
    }
  }

  /** The failover tiers of an import: its source clusters and, with local endpoints, this one. */
  private tiersOf(route: ImportRoute, peers: PeerGateway[]): Tier[] {
    const locality = this.o.locality ?? {};
    const candidates = [
      ...route.clusters.map((c) => ({
        clusterId: c.clusterId,
        readyEndpoints: c.readyEndpoints,
        locality: peers.find((p) => p.clusterId === c.clusterId)?.locality ?? {},
      })),
      ...((route.localEndpoints?.length ?? 0) > 0
        ? [{ clusterId: this.o.clusterId, readyEndpoints: this.readyLocal(route), locality }]
        : []),
    ];
    return computeTiers(route.policy ?? {}, { clusterId: this.o.clusterId, locality }, candidates);
  }

  /** Listens for an import's local clients; a failure is logged and the import stays unserved. */
  private async openListener(state: ImportState): Promise<void> {
    const { route } = state;
    try {
      if (route.listenHost) await this.o.prepareListenHost?.(route.listenHost);
      const host = route.listenHost ?? this.o.localListenHost;
      if (route.protocol === "UDP") await this.listenForDatagrams(state, host);
      else await this.listenForConnections(state, host);
    } catch (err) {
      this.log.error(
        {
          service: route.service,
          port: route.port,
          protocol: route.protocol,
          listenPort: route.listenPort,
          err,
        },
        "cannot listen for an imported service",
      );
    }
  }

  private async listenForDatagrams(state: ImportState, host: string): Promise<void> {
    const label = routeKey(state.route.service, state.route.port, "UDP");
    const listener = new DatagramListener(
      host,
      // The route is replaced on every table, so a changed timeout applies to the next flows.
      () => state.route.udpFlowIdleMs ?? this.limits.udpFlowIdleMs,
      (flow) => void this.onLocal(state, flow),
      () => this.metrics.datagramsDropped.inc({ service: label }),
    );
    try {
      state.listenPort = await listener.listen(state.route.listenPort, host);
      state.datagrams = listener;
    } catch (err) {
      listener.close();
      throw err;
    }
  }

  private async listenForConnections(state: ImportState, host: string): Promise<void> {
    const server = net.createServer(
      // Set by the server as it accepts, before any JavaScript of ours runs for the socket.
      {
        allowHalfOpen: true,
        pauseOnConnect: true,
        noDelay: true,
        keepAlive: true,
        keepAliveInitialDelay: 30_000,
      },
      (s) => void this.onLocal(state, s),
    );
    await listen(server, state.route.listenPort, host, this.log);
    state.server = server;
    state.listenPort = (server.address() as net.AddressInfo).port;
  }

  private applyPeers(peers: PeerGateway[]): void {
    const wanted = new Map(
      peers.filter((p) => p.clusterId !== this.o.clusterId).map((p) => [p.clusterId, p]),
    );
    for (const [id, c] of this.connectors) {
      const p = wanted.get(id);
      if (!p || p.host !== c.peer.host || p.port !== c.peer.port) {
        c.close();
        this.connectors.delete(id);
        clearTimeout(this.probeTimers.get(id));
        this.probeTimers.delete(id);
        this.health.forget(id);
      }
    }
    for (const [id, p] of wanted) {
      if (this.connectors.has(id)) continue;
      const connector = new PeerConnector(
        p,
        () => ({ secureContext: this.secureContext!, bundle: this.o.identity.bundle() }),
        this.poolOptions,
        this.metrics,
        this.clock,
        () => this.descriptors.roomForIdle,
      );
      this.connectors.set(id, connector);
      connector.refill();
      this.scheduleProbe(id, 0);
    }
  }

  private scheduleProbe(clusterId: string, delayMs: number): void {
    if (this.draining) return;
    const timer = setTimeout(() => {
      this.connectors.get(clusterId)?.expire();
      void this.probe(clusterId).finally(() => {
        if (this.connectors.has(clusterId))
          this.scheduleProbe(clusterId, jitteredDelay(this.probeOptions.intervalMs));
      });
    }, delayMs);
    timer.unref();
    this.probeTimers.set(clusterId, timer);
  }

  private readyLocal(route: ImportRoute): number {
    return (route.localEndpoints ?? []).filter(
      (e) => e.ready !== false && this.health.available(endpointKey(e)),
    ).length;
  }

  private usable(route: ImportRoute): (clusterId: string) => boolean {
    return (clusterId) => {
      if (clusterId === this.o.clusterId) return this.readyLocal(route) > 0;
      const c = route.clusters.find((x) => x.clusterId === clusterId);
      return (
        !!c &&
        c.readyEndpoints > 0 &&
        this.connectors.has(clusterId) &&
        this.health.available(clusterId) &&
        this.serviceHealth.available(serviceKey(clusterId, route))
      );
    };
  }

  private updateShares(): void {
    for (const s of this.imports.values()) {
      for (const r of effectiveRouting(s.tiers, this.usable(s.route)))
        this.metrics.routingShare.set(
          { service: routeKey(s.route.service, s.route.port, s.route.protocol), cluster: r.clusterId },
          r.share,
        );
    }
  }

  private track(socket: Duplex): void {
    this.activeSockets.add(socket);
    // Peer connections carry many streams: hook their close once, not once per stream.
    if (this.closeHooked.has(socket)) return;
    this.closeHooked.add(socket);
    socket.on("close", this.untrack);
  }

  /**
   * Whether a new proxied connection in `direction` is refused: while draining, at the limit of
   * its direction, or when it would hold `descriptors` more than the open-file limit leaves room
   * for. A refusal at a limit is remembered for `atLimit`.
   */
  private refusesMore(direction: keyof AtLimit, descriptors: number): boolean {
    if (this.draining) return true;
    if (this[direction] >= this.limits.maxConnections)
      return this.refusedAt(direction, this.maxConnectionsCause);
    return !this.descriptors.fits(descriptors) && this.refusedAt(direction, "open-files");
  }

  /** Remembers a refusal at a limit for `atLimit`; true, the refusal. */
  private refusedAt(direction: keyof AtLimit, cause: LimitCause): true {
    this.lastLimit[direction] = { at: this.clock(), cause };
    return true;
  }

  /** Turns a local client away at a limit, and counts it. */
  private refuseClient(client: PlainSocket, service: string): void {
    this.metrics.refusals.inc({ reason: "limit", cluster: this.o.clusterId, service });
    client.destroy();
  }

  /** One listener for every tracked socket, not a closure each. */
  private readonly untrack = removerFrom(this.activeSockets);

  // ── outbound: a local client connection to an imported service ──────────────────────────────

  private async onLocal(state: ImportState, client: PlainSocket): Promise<void> {
    const service = state.route.service;
    client.on("error", ignoreError);
    const descriptors = descriptorsHeld(client instanceof net.Socket, this.multiplexes);
    if (this.refusesMore("outbound", descriptors)) return this.refuseClient(client, service);
    this.track(client);
    this.outbound++;
    this.descriptors.take(descriptors);
    try {
      await this.routeLocal(state, client);
    } finally {
      this.outbound--;
      this.descriptors.release(descriptors);
    }
  }

  /** Whether this gateway sends its streams as channels, which admission counts as holding no peer connection. */
  private get multiplexes(): boolean {
    return (this.poolOptions.multiplex ?? 0) > 0;
  }

  /**
   * Counts a socket an outbound stream holds besides its client's that admission did not count:
   * this gateway multiplexes, so admission counted the stream as a channel, but it goes to an
   * endpoint in this cluster or over a peer connection of its own (a peer that does not
   * multiplex). Returns the descriptors counted, to give back when the stream ends, or undefined
   * when they do not fit: the client is then refused like any other over the limit.
   */
  private countSecondSocket(client: PlainSocket, service: string): number | undefined {
    if (!this.multiplexes) return 0;
    if (!this.descriptors.fits(1)) {
      this.refusedAt("outbound", "open-files");
      this.refuseClient(client, service);
      return undefined;
    }
    this.descriptors.take(1);
    return 1;
  }

  private async routeLocal(state: ImportState, client: PlainSocket): Promise<void> {
    const { route } = state;
    const labelService = routeKey(route.service, route.port, route.protocol);
    const tried = new Set<string>();
    // The client's bytes sent to a peer that has not replied yet, replayed on the next attempt.
    const early: EarlyData = { chunks: [], bytes: 0, ended: false };
    for (let attempt = 0; attempt < this.limits.maxAttempts && !client.destroyed; attempt++) {
      const choice = state.picker.pick(state.tiers, this.usable(route), tried);
      if (!choice) break;
      const clusterId = choice.clusterId;
      tried.add(clusterId);
      this.metrics.routingDecision(labelService, clusterId, state.tiers[choice.tier]!.origin).value++;
      const sums = this.metrics.streamSums("outbound", labelService, clusterId);
      const r =
        clusterId === this.o.clusterId
          ? await this.streamToEndpoint(route, client, early, sums)
          : await this.streamToPeer(clusterId, route, client, early, sums);
      if (r === "not-opened") continue;
      return;
    }
    this.metrics.connectionsTotal.inc({
      direction: "outbound",
      service: labelService,
      cluster: "",
      outcome: "no-route",
    });
    this.log.warn(
      { service: route.service, port: route.port, tried: [...tried] },
      "no cluster could take the connection",
    );
    client.destroy();
  }

  /** Carries a client connection to a ready endpoint in this cluster; "not-opened" when none takes it. */
  private async streamToEndpoint(
    route: ImportRoute,
    client: PlainSocket,
    early: EarlyData,
    sums: StreamSums,
  ): Promise<"done" | "not-opened"> {
    const extra = this.countSecondSocket(client, route.service);
    if (extra === undefined) return "done";
    try {
      const backend = await this.connectEndpoint(route, route.localEndpoints ?? []);
      if (!backend) return "not-opened";
      sums.active.value++;
      const r = await pipeBoth(client, backend, this.limits.idleTimeoutMs, early);
      finishMetrics(sums, r.clean, r.fromPlain, r.toPlain);
      return "done";
    } finally {
      this.descriptors.release(extra);
    }
  }

  /**
   * Carries a client connection to `service` on a peer: the OPEN and the client's first bytes go
   * out together, without waiting for the reply (early data). Records health. "not-opened" when
   * that peer cannot serve it (refused, or unreachable): the client is still open and `early`
   * holds what it sent, for the next cluster.
   */
  private async streamToPeer(
    clusterId: string,
    route: ImportRoute,
    client: PlainSocket,
    early: EarlyData,
    sums: StreamSums,
  ): Promise<"done" | "not-opened"> {
    const connector = this.connectors.get(clusterId);
    if (!connector) return "not-opened";
    const open = this.openFor(route, client);
    // A warm connection the peer has just closed is not the peer's fault: one redial is free.
    for (let round = 0; round < 2; round++) {
      let tunnel: Duplex;
      let warm: boolean;
      try {
        ({ socket: tunnel, warm } = await connector.acquire());
      } catch (err) {
        this.health.connectResult(clusterId, false, err instanceof PeerRefusedError);
        this.log.warn({ peer: clusterId, err: (err as Error).message }, "cannot connect to peer gateway");
        return "not-opened";
      }
      // Unused: kept for a later stream only if the budget has room for it.
      if (client.destroyed) {
        connector.release(tunnel, false);
        return "done";
      }
      const channel = tunnel instanceof MuxChannel;
      const extra = channel ? 0 : this.countSecondSocket(client, route.service);
      if (extra === undefined) {
        connector.release(tunnel, false);
        return "done";
      }
      // A channel needs no tracking: the client is tracked, and the channel ends with its stream or its connection.
      if (!channel) this.track(tunnel);
      let accepted = false;
      let r: BridgeResult;
      try {
        r = await bridge(client, tunnel, this.limits.idleTimeoutMs, {
          role: "importing",
          opening: {
            open,
            early,
            replyTimeoutMs: this.limits.connectTimeoutMs,
            onAccepted: () => {
              accepted = true;
              this.health.connectResult(clusterId, true);
              this.serviceHealth.connectResult(serviceKey(clusterId, route), true);
              sums.active.value++;
            },
          },
        });
      } finally {
        this.descriptors.release(extra);
      }
      this.activeSockets.delete(tunnel);
      if (accepted) {
        finishMetrics(sums, r.clean, r.fromPlain, r.toPlain);
        this.giveBack(connector, tunnel, r.reusable);
        return "done";
      }
      if (!r.notOpened) return "done"; // the client went away before the reply
      const status = r.notOpened.refused;
      if (status) {
        this.giveBack(connector, tunnel, r.reusable);
        this.peerRefused(clusterId, route, status);
        return "not-opened";
      }
      if (warm && round === 0) {
        // A dead warm connection means its idle siblings are likely stale too (the peer restarted
        // or rotated its certificate): drop them, so the retry dials fresh.
        connector.flush();
        continue;
      }
      this.unanswered(clusterId, route);
      return "not-opened";
    }
    return "not-opened";
  }

  /** A peer connection or channel whose stream is over goes back to the pool if it can carry another. */
  private giveBack(connector: PeerConnector, tunnel: Duplex, reusable: boolean): void {
    if (reusable && !this.draining) connector.release(tunnel);
    else tunnel.destroy();
  }

  /** The OPEN for a client's stream: the service, and the client's namespace when it is known. */
  private openFor(route: ImportRoute, client: PlainSocket): Buffer {
    const kind = route.protocol === "UDP" ? "datagram" : "connect";
    const sourceNamespace =
      // Only when namespaces are resolved: reading the address costs a system call per connection.
      this.o.sourceNamespaces &&
      client.remoteAddress &&
      this.o.sourceNamespaces.namespaceOf(client.remoteAddress);
    if (!sourceNamespace) {
      // The same bytes for every connection to the route: encoded once (a written buffer is only read).
      let open = this.openByRoute.get(route);
      if (!open)
        this.openByRoute.set(route, (open = encodeOpen({ kind, service: route.service, port: route.port })));
      return open;
    }
    return encodeOpen({ kind, service: route.service, port: route.port, sourceNamespace });
  }

  /**
   * A peer took a fresh connection, then closed it or kept silent instead of replying to the OPEN.
   * For a UDP flow that is what a gateway from before UDP does with the `datagram` kind (it closes
   * on an OPEN it cannot read): the peer is up and its TCP traffic must not suffer, so only this
   * service's UDP avoids it for a while. Probes still catch a peer that is really down.
   */
  private unanswered(clusterId: string, route: ImportRoute): void {
    if (route.protocol !== "UDP") return this.health.connectResult(clusterId, false);
    this.serviceHealth.connectResult(serviceKey(clusterId, route), false, true);
    this.log.warn(
      { peer: clusterId, service: route.service, port: route.port, protocol: "UDP" },
      "peer closed a UDP flow's stream without replying: is its gateway older than UDP support?",
    );
  }

  /** The peer answered: its verdict is definitive, no need to wait for more failures. */
  private peerRefused(clusterId: string, route: ImportRoute, status: ReplyStatusName): void {
    if (status === "draining" || status === "overloaded") this.health.connectResult(clusterId, false, true);
    else this.serviceHealth.connectResult(serviceKey(clusterId, route), false, true);
    this.log.warn(
      { peer: clusterId, service: route.service, port: route.port, status },
      "peer refused the stream",
    );
  }

  /**
   * Connects to a ready endpoint of a route, round robin, skipping ejected ones; passive health per
   * endpoint. A UDP route's "connection" is a connected UDP socket.
   */
  private async connectEndpoint(
    route: { service: string; port: number; protocol?: RouteProtocol },
    endpoints: Endpoint[],
  ): Promise<PlainSocket | undefined> {
    const ready = endpoints.filter((e) => e.ready !== false);
    if (ready.length === 0) return undefined;
    const key = routeKey(route.service, route.port, route.protocol);
    let cursor = this.cursors.get(key);
    if (!cursor) this.cursors.set(key, (cursor = { next: 0 }));
    const attempts = Math.min(this.limits.maxAttempts, ready.length);
    for (let i = 0, tried = 0; i < ready.length && tried < attempts; i++) {
      const e = ready[(cursor.next + i) % ready.length]!;
      if (!this.health.available(endpointKey(e))) continue;
      tried++;
      try {
        const socket =
          route.protocol === "UDP"
            ? await connectDatagram(e, () => this.metrics.datagramsDropped.inc({ service: key }))
            : await connectTcp(e, this.limits.connectTimeoutMs);
        cursor.next = (cursor.next + i + 1) % ready.length;
        this.health.connectResult(endpointKey(e), true);
        this.track(socket);
        return socket;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        // Out of descriptors is this process's trouble, not the endpoint's: no ejection, no retry.
        if (code === "EMFILE" || code === "ENFILE") {
          this.log.warn({ service: route.service, port: route.port, err: code }, "out of file descriptors");
          return undefined;
        }
        // A refused connection is definitive: that endpoint is not listening.
        this.health.connectResult(endpointKey(e), false, code === "ECONNREFUSED");
      }
    }
    return undefined;
  }

  // ── inbound: a peer gateway's connection ───────────────────────────────────────────────────────

  private onPeerConnection(socket: TLSSocket): void {
    socket.on("error", ignoreError);
    socket.setNoDelay(true);
    const facts: PeerCertificateFacts = {
      authorized: socket.authorized,
      authorizationError: socket.authorizationError,
      certificate: socket.getPeerCertificate(),
    };
    const verdict = classifyPeer(facts, this.o.identity.bundle(), this.clock());
    const resumed = String(socket.isSessionReused());
    if (!verdict.ok) {
      this.metrics.handshakes.inc({ role: "server", result: verdict.reason, resumed });
      this.metrics.refusals.inc({ reason: verdict.reason, cluster: "", service: "" });
      this.log.warn(
        { reason: verdict.reason, detail: verdict.detail, remote: socket.remoteAddress },
        "refused a peer gateway",
      );
      socket.destroy();
      return;
    }
    this.metrics.handshakes.inc({ role: "server", result: "ok", resumed });
    if (socket.alpnProtocol === MUX_ALPN)
      new MuxConnection(socket, (channel) => void this.serveTunnel(channel, facts, verdict.identity));
    else void this.serveTunnel(socket, facts, verdict.identity);
  }

  /**
   * Serves the streams of a peer's tunnel: one after another on a connection of its own, exactly
   * one on a multiplexed channel (released when it ends cleanly).
   */
  private async serveTunnel(
    socket: Duplex,
    facts: PeerCertificateFacts,
    source: PeerIdentity,
  ): Promise<void> {
    const channel = socket instanceof MuxChannel ? socket : undefined;
    let buffered: Buffer = Buffer.alloc(0);
    for (;;) {
      if (this.draining) return void socket.destroy();
      this.idlePeerSockets.add(socket);
      if (!channel) this.idleServedConnections.add(socket);
      const open = await readOpen(socket, buffered, this.limits.peerIdleMs);
      this.idlePeerSockets.delete(socket);
      this.idleServedConnections.delete(socket);
      if (!open) return void socket.destroy();
      // Re-checked on every stream: a revocation or an expiry applies to connections already open.
      const verdict = this.verdicts.classify(facts, this.o.identity.bundle(), this.clock());
      if (!verdict.ok) {
        this.metrics.refusals.inc({
          reason: verdict.reason,
          cluster: source.clusterId,
          service: open.request.service,
        });
        this.log.warn(
          { reason: verdict.reason, source: source.clusterId },
          "refused a stream from a peer no longer trusted",
        );
        return void socket.destroy();
      }
      if (open.request.kind === "probe") {
        socket.write(reply(this.draining ? "draining" : "ok"));
        if (channel) return channel.release(this.limits.peerIdleMs);
        buffered = open.rest;
        continue;
      }
      const outcome = await this.serveStream(socket, open.request, open.rest, source);
      if (outcome === undefined) return void socket.destroy();
      if (channel) return channel.release(this.limits.peerIdleMs);
      buffered = outcome;
    }
  }

  /** Serves one stream; returns bytes already read for the next stream, or undefined to close. */
  private async serveStream(
    socket: Duplex,
    req: OpenRequest,
    rest: Buffer,
    peer: PeerIdentity,
  ): Promise<Buffer | undefined> {
    // The cluster is the certificate's; the namespace is that cluster's gateway's word about its own client.
    const source: PeerIdentity = req.sourceNamespace ? { ...peer, namespace: req.sourceNamespace } : peer;
    const labelService = routeKey(req.service, req.port, req.kind === "datagram" ? "UDP" : "TCP");
    const route = this.exports.get(labelService);
    if (!route) return this.refuseStream(socket, req, rest, "unknownService");
    if (this.deniesAccess(source, route, req, labelService))
      return this.refuseStream(socket, req, rest, "accessDenied");
    const descriptors = descriptorsHeld(true, socket instanceof MuxChannel);
    if (this.refusesMore("inbound", descriptors)) {
      this.metrics.refusals.inc({ reason: "limit", cluster: source.clusterId, service: labelService });
      return this.refuseStream(socket, req, rest, this.draining ? "draining" : "overloaded");
    }
    this.inbound++;
    this.descriptors.take(descriptors);
    // A channel ends with its stream (the backend is tracked) or its connection (a peer socket).
    if (!(socket instanceof MuxChannel)) this.track(socket);
    try {
      const backend = await this.connectEndpoint(route, route.endpoints);
      if (!backend) {
        const status = route.endpoints.some((e) => e.ready !== false) ? "upstreamFailed" : "noEndpoints";
        return await this.refuseStream(socket, req, rest, status);
      }
      const sums = this.metrics.streamSums("inbound", labelService, source.clusterId);
      sums.active.value++;
      // A version 1 client waits for the reply before sending anything; later ones do not.
      const ok = reply("ok");
      const leadsWithReply = (req.version ?? VERSION) >= 2;
      if (!leadsWithReply) socket.write(ok);
      const r = await bridge(backend, socket, this.limits.idleTimeoutMs, {
        role: "exporting",
        initial: rest,
        ...(leadsWithReply ? { reply: ok } : {}),
      });
      // For inbound, "sent" is towards the service: what the backend received.
      finishMetrics(sums, r.clean, r.toPlain, r.fromPlain);
      return r.reusable ? r.leftover : undefined;
    } finally {
      this.inbound--;
      this.descriptors.release(descriptors);
      this.activeSockets.delete(socket);
    }
  }

  /** Whether the export refuses this source; a refusal is counted and logged with who asked. */
  private deniesAccess(source: PeerIdentity, route: ExportRoute, req: OpenRequest, label: string): boolean {
    const decision = decideAccess(source, route.allow, this.table.accessDefault ?? "allow");
    if (decision.allowed) return false;
    this.metrics.refusals.inc({ reason: "access-denied", cluster: source.clusterId, service: label });
    this.log.warn(
      {
        source: source.clusterId,
        namespace: source.namespace,
        service: req.service,
        port: req.port,
        ...(req.kind === "datagram" ? { protocol: "UDP" } : {}),
        because: decision.because,
      },
      "access denied",
    );
    return true;
  }

  /**
   * Refuses a stream. A v2 client gateway may already have sent the client's first bytes and ends
   * its direction with a FIN even when refused: those frames are skipped, so the connection can
   * carry the next OPEN. Returns what was read beyond them, or undefined to close.
   */
  private refuseStream(
    socket: Duplex,
    req: OpenRequest,
    rest: Buffer,
    status: ReplyStatusName,
  ): Promise<Buffer | undefined> | Buffer {
    socket.write(reply(status));
    if ((req.version ?? VERSION) < 2) return rest;
    return skipStream(socket, rest, this.limits.peerIdleMs);
  }
}

/** A connection has ended: it leaves the active gauge and adds its outcome and bytes. */
function finishMetrics(sums: StreamSums, clean: boolean, sent: number, received: number): void {
  sums.active.value--;
  (clean ? sums.closed : sums.aborted).value++;
  sums.sent.value += sent;
  sums.received.value += received;
}

/** The one-byte replies, made once (a written buffer is only read). */
const REPLIES = Object.fromEntries(
  Object.entries(ReplyStatus).map(([name, code]) => [name, Buffer.from([code])]),
) as Record<ReplyStatusName, Buffer>;

function reply(status: ReplyStatusName): Buffer {
  return REPLIES[status];
}

/** Reads an OPEN (possibly already partly in `buffered`); undefined on close, timeout or garbage. */
function readOpen(
  socket: Duplex,
  buffered: Buffer,
  timeoutMs: number,
): Promise<{ request: OpenRequest; rest: Buffer } | undefined> {
  let buf: Buffer = Buffer.alloc(0);
  return readFrom<{ request: OpenRequest; rest: Buffer } | undefined>(
    socket,
    buffered,
    timeoutMs,
    (chunk) => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      const r = decodeOpen(buf);
      if (r.state === "incomplete" && buf.length < MAX_OPEN_LENGTH) return { done: false };
      return {
        done: true,
        value: r.state === "done" ? { request: r.value, rest: buf.subarray(r.consumed) } : undefined,
      };
    },
    () => undefined,
  );
}

/** Reads the one-byte reply to an OPEN; rejects on close or timeout. */
async function readReply(
  socket: Duplex,
  timeoutMs: number,
): Promise<{ status: ReplyStatusName; rest: Buffer }> {
  const reply = await readFrom<{ status: ReplyStatusName; rest: Buffer } | Error>(
    socket,
    Buffer.alloc(0),
    timeoutMs,
    (chunk) => {
      const status = REPLY_NAMES[chunk[0]!];
      return {
        done: true,
        value: status ? { status, rest: chunk.subarray(1) } : new Error(`bad reply byte ${chunk[0]}`),
      };
    },
    (why) => new Error(why === "closed" ? "peer closed the connection" : "no reply from peer"),
  );
  if (reply instanceof Error) throw reply;
  return reply;
}

/** A "close" listener that removes the emitter (`this`) from `set`. */
function removerFrom(set: Set<Duplex>): (this: Duplex) => void {
  return function (this: Duplex): void {
    set.delete(this);
  };
}

/** Errors of sockets whose failure is handled through their close. */
const ignoreError = (): void => {};

function connectTcp(e: Endpoint, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: e.address, port: e.port, allowHalfOpen: true, noDelay: true });
    const timer = setTimeout(
      () => socket.destroy(Object.assign(new Error("connect timeout"), { code: "ETIMEDOUT" })),
      timeoutMs,
    );
    const failed = (err: Error): void => {
      clearTimeout(timer);
      reject(err);
    };
    socket.once("error", failed);
    socket.once("connect", () => {
      clearTimeout(timer);
      socket.off("error", failed);
      socket.on("error", ignoreError);
      socket.pause();
      resolve(socket);
    });
  });
}

function listen(server: net.Server, port: number, host: string, log: Logger): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen({ port, host, backlog: 4096 }, () => {
      server.off("error", reject);
      // A failed accept (out of descriptors, say) is reported here; the listener itself goes on.
      server.on("error", (err: NodeJS.ErrnoException) =>
        log.warn({ port, err: err.code ?? err.message }, "could not accept a connection"),
      );
      resolve();
    });
  });
}

function closeServer(server: net.Server | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (!server?.listening) return resolve();
    server.close(() => resolve());
  });
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} timed out`)), ms);
    p.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
