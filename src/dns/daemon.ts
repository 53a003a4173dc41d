/**
 * The `meridian dns` process: one member's `clusterset.local` server. It watches that member's
 * ServiceImports, MCS EndpointSlices and Namespaces (and nothing on the hub, so the hub being down
 * never matters), keeps a {@link ClusterSetZone} up to date, and serves it over UDP and TCP.
 * Prometheus metrics and a readiness endpoint are served over HTTP; logs are JSON lines (pino).
 *
 * This is the only file of `src/dns` that talks to Kubernetes; the core stays pure.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import type { KubernetesObject, V1EndpointSlice, V1Namespace } from "@kubernetes/client-node";
import { loadCredentials } from "../kube/credentials.js";
import type { Logger } from "pino";
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import { TalliedCounter } from "../observability/tally.js";
import { LABEL_SERVICE_NAME } from "../api/mcs.js";
import type { ServiceImport } from "../api/mcs.js";
import { Reflector } from "../kube/reflector.js";
import type { ReflectorEvent, ReflectorLifecycle } from "../kube/reflector.js";
import { RestClient, Resources } from "../kube/rest.js";
import type { ResourceRef } from "../kube/rest.js";
import { RRType, Rcode } from "./records.js";
import type { ResolveOptions } from "./resolve.js";
import { startDnsServer } from "./server.js";
import type { DnsQueryEvent, DnsServerHandle } from "./server.js";
import { ClusterSetZone } from "./zone.js";
import { MEMBER_NAMESPACE } from "../api/meridian.js";
import { registryTotals, statsPublisher } from "../observability/stats-report.js";

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

export interface DnsDaemonOptions {
  /** Path of a kubeconfig for the member's own API server; in-cluster credentials when unset. */
  readonly kubeconfig?: string;
  /** Context of that kubeconfig; its current context when unset. */
  readonly context?: string;
  /** Reach the API server through this Unix socket (the local clusterset's relay). */
  readonly apiSocket?: string;
  readonly listen: HostPort;
  /** Where /metrics, /ready and /healthz are served; none when unset. */
  readonly metrics?: HostPort;
  readonly zone: string;
  readonly ttl: number;
  readonly logger: Logger;
}

export interface DnsDaemon {
  readonly dns: DnsServerHandle;
  /** Bound address of the metrics server, when one was asked for. */
  readonly metricsAddress: HostPort | undefined;
  readonly zone: ClusterSetZone;
  readonly registry: Registry;
  /** Resolves once every watched resource has completed its first list. */
  readonly synced: Promise<void>;
  close(): Promise<void>;
}

/** The three resources DNS reads, with how each feeds the zone. */
type WatchedResource = "serviceimports" | "endpointslices" | "namespaces";

const QTYPE_NAMES = new Map<number, string>(Object.entries(RRType).map(([name, code]) => [code, name]));
const RCODE_NAMES = new Map<number, string>(Object.entries(Rcode).map(([name, code]) => [code, name]));

/** Starts watching, serving DNS and (optionally) metrics. Rejects if a socket cannot be bound. */
export async function startDnsDaemon(options: DnsDaemonOptions): Promise<DnsDaemon> {
  const { logger } = options;
  const { name: clusterName, credentials } = await loadCredentials(
    options.kubeconfig,
    options.context,
    options.apiSocket,
  );
  const rest = new RestClient(clusterName, credentials, { maxSockets: 8 });
  const zone = new ClusterSetZone();
  const registry = new Registry();
  const metrics = createMetrics(registry, zone);
  const resolveOptions: ResolveOptions = { zone: options.zone, ttl: options.ttl };

  const listed = new Set<WatchedResource>();
  let markSynced: () => void = () => {};
  const synced = new Promise<void>((resolve) => (markSynced = resolve));
  const startedAt = Date.now();
  const onLifecycle = (resource: WatchedResource) => (event: ReflectorLifecycle) => {
    switch (event.kind) {
      case "listed":
        if (!listed.has(resource)) {
          listed.add(resource);
          metrics.cacheSynced.set({ resource }, 1);
          logger.info({ resource, items: event.items }, "initial list applied");
          if (listed.size === 3) {
            zone.setSynced(true);
            metrics.cacheSynced.set({ resource: "all" }, 1);
            logger.info({ ...zone.stats(), ms: Date.now() - startedAt }, "caches synced; answering");
            markSynced();
          }
        }
        break;
      case "relist":
        metrics.watchRestarts.inc({ resource, reason: event.reason });
        logger.info({ resource, reason: event.reason }, "relisting");
        break;
      case "watch-error":
        metrics.watchRestarts.inc({ resource, reason: "error" });
        logger.warn({ resource, err: describeError(event.error) }, "watch failed; retrying with backoff");
        break;
    }
  };

  const reflectors = [
    watch<ServiceImport>(rest, Resources.serviceImports, {
      onEvent: (event) => {
        const { name, namespace } = event.object.metadata;
        if (event.type === "DELETED") zone.deleteServiceImport(namespace ?? "", name ?? "");
        else zone.upsertServiceImport(event.object);
      },
      onLifecycle: onLifecycle("serviceimports"),
    }),
    watch<V1EndpointSlice>(rest, Resources.endpointSlices, {
      // Only MCS slices (what the mcs-controller writes), as CoreDNS selects them.
      labelSelector: LABEL_SERVICE_NAME,
      onEvent: (event) => {
        const { name, namespace } = event.object.metadata ?? {};
        if (event.type === "DELETED") zone.deleteEndpointSlice(namespace ?? "", name ?? "");
        else zone.upsertEndpointSlice(event.object);
      },
      onLifecycle: onLifecycle("endpointslices"),
    }),
    watch<V1Namespace>(rest, Resources.namespaces, {
      onEvent: (event) => {
        const name = event.object.metadata?.name ?? "";
        if (event.type === "DELETED") zone.deleteNamespace(name);
        else zone.upsertNamespace(name);
      },
      onLifecycle: onLifecycle("namespaces"),
    }),
  ];

  let dns: DnsServerHandle;
  let metricsServer: http.Server | undefined;
  try {
    dns = await startDnsServer({
      host: options.listen.host,
      port: options.listen.port,
      zone,
      resolve: resolveOptions,
      observer: {
        onQuery: (event) => metrics.observe(event),
        onError: (error, context) => logger.debug({ err: error.message, context }, "socket error"),
      },
    });
    if (options.metrics) metricsServer = await serveMetrics(options.metrics, registry, zone);
  } catch (error) {
    await Promise.all(reflectors.map((r) => r.stop()));
    rest.close();
    throw new Error(`cannot listen: ${(error as Error).message}`, { cause: error });
  }
  for (const reflector of reflectors) reflector.start();
  // Query totals for the dashboard, in the member itself (the hub cannot reach this pod).
  let warned = false;
  const stats = statsPublisher(
    rest,
    MEMBER_NAMESPACE,
    "dns",
    async () => ({
      counters: await registryTotals(registry, [
        { metric: "meridian_dns_queries_total", short: "queries", by: "rcode" },
      ]),
    }),
    (err) => {
      if (!warned)
        logger.warn(
          { err: (err as Error).message },
          "cannot publish query totals (the dashboard shows none)",
        );
      warned = true;
    },
  );
  stats.start();
  const metricsAddress = metricsServer && toHostPort(metricsServer.address() as AddressInfo);
  logger.info(
    {
      cluster: clusterName,
      server: rest.server.href,
      listen: `${formatHostPort({ host: dns.host, port: dns.udpPort })}`,
      metrics: metricsAddress && formatHostPort(metricsAddress),
      zone: options.zone,
      ttl: options.ttl,
    },
    "serving clusterset DNS (SERVFAIL until caches sync)",
  );

  let closing: Promise<void> | undefined;
  return {
    dns,
    metricsAddress,
    zone,
    registry,
    synced,
    close() {
      closing ??= (async () => {
        stats.stop();
        await dns.close();
        if (metricsServer) {
          metricsServer.closeAllConnections();
          await new Promise((resolve) => metricsServer.close(resolve));
        }
        await Promise.all(reflectors.map((r) => r.stop()));
        rest.close();
      })();
      return closing;
    },
  };
}

function watch<T extends KubernetesObject>(
  rest: RestClient,
  resource: ResourceRef,
  options: {
    labelSelector?: string;
    onEvent: (event: ReflectorEvent<T>) => void;
    onLifecycle: (event: ReflectorLifecycle) => void;
  },
): Reflector<T> {
  return new Reflector<T>(rest, resource, {
    ...options,
    // The zone keeps its own pre-parsed copy; the reflector's cache needs only keys and versions.
    transform: (obj) => {
      delete obj.metadata?.managedFields;
      delete obj.metadata?.annotations;
      return obj as T;
    },
  });
}

interface DnsMetrics {
  readonly cacheSynced: Gauge;
  readonly watchRestarts: Counter;
  observe(event: DnsQueryEvent): void;
}

/**
 * Query counts are tallied (src/observability/tally.ts): a labelled prom-client `inc()` per query
 * costs more than answering an A query.
 */
function createMetrics(registry: Registry, zone: ClusterSetZone): DnsMetrics {
  collectDefaultMetrics({ register: registry });
  const queries = new TalliedCounter({
    name: "meridian_dns_queries_total",
    help: "DNS messages answered, by transport, question type and response code (rcode NONE: no reply sent)",
    labelNames: ["transport", "qtype", "rcode"],
    registry,
  });
  const truncated = new TalliedCounter({
    name: "meridian_dns_truncated_responses_total",
    help: "UDP responses sent with the TC bit because the answer did not fit the client's buffer",
    labelNames: [],
    registry,
  });
  const duration = new Histogram({
    name: "meridian_dns_request_duration_seconds",
    help: "Time from receiving a DNS message to handing its response to the socket",
    buckets: [0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05],
    registers: [registry],
  });
  const cacheSynced = new Gauge({
    name: "meridian_dns_cache_synced",
    help: "1 once the watch of this resource has completed its first list (resource=all: answering)",
    labelNames: ["resource"],
    registers: [registry],
  });
  for (const resource of ["serviceimports", "endpointslices", "namespaces", "all"]) {
    cacheSynced.set({ resource }, 0);
  }
  const watchRestarts = new Counter({
    name: "meridian_dns_watch_restarts_total",
    help: "Watches restarted, by resource and reason (error, gone, resync, watchdog)",
    labelNames: ["resource", "reason"],
    registers: [registry],
  });
  new Gauge({
    name: "meridian_dns_zone_objects",
    help: "Objects indexed in the clusterset.local zone",
    labelNames: ["kind"],
    registers: [registry],
    collect() {
      const stats = zone.stats();
      this.set({ kind: "namespaces" }, stats.namespaces);
      this.set({ kind: "serviceimports" }, stats.serviceImports);
      this.set({ kind: "endpointslices" }, stats.endpointSlices);
      this.set({ kind: "ready_addresses" }, stats.readyAddresses);
    },
  });
  return {
    cacheSynced,
    watchRestarts,
    observe(event) {
      // Keyed by the raw numbers: their names are looked up once per combination, not per query.
      queries.incKeyed(`${event.transport}|${event.qtype}|${event.rcode}`, queryLabels, event);
      if (event.truncated) truncated.inc({});
      duration.observe(event.durationSeconds);
    },
  };
}

function queryLabels(event: DnsQueryEvent): Record<"transport" | "qtype" | "rcode", string> {
  return { transport: event.transport, qtype: qtypeName(event.qtype), rcode: rcodeName(event.rcode) };
}

function qtypeName(qtype: number): string {
  if (qtype < 0) return "NONE";
  return QTYPE_NAMES.get(qtype) ?? `TYPE${qtype}`;
}

function rcodeName(rcode: number): string {
  if (rcode < 0) return "NONE";
  return RCODE_NAMES.get(rcode) ?? `RCODE${rcode}`;
}

async function serveMetrics(
  address: HostPort,
  registry: Registry,
  zone: ClusterSetZone,
): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (path === "/metrics") {
      registry.metrics().then(
        (text) => {
          res.writeHead(200, { "Content-Type": registry.contentType });
          res.end(text);
        },
        (error: unknown) => {
          res.writeHead(500, { "Content-Type": "text/plain" });
          res.end(String(error));
        },
      );
      return;
    }
    if (path === "/ready") {
      // Ready only once answers are authoritative: before that, missing names are SERVFAIL.
      res.writeHead(zone.synced ? 200 : 503, { "Content-Type": "text/plain" });
      res.end(zone.synced ? "ok\n" : "caches not synced\n");
      return;
    }
    if (path === "/healthz") {
      res.writeHead(200, { "Content-Type": "text/plain" });
      res.end("ok\n");
      return;
    }
    res.writeHead(404, { "Content-Type": "text/plain" });
    res.end("not found; try /metrics, /ready or /healthz\n");
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(address.port, address.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  return server;
}

function toHostPort(address: AddressInfo): HostPort {
  return { host: address.address, port: address.port };
}

export function formatHostPort(address: HostPort): string {
  return address.host.includes(":") ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`;
}

/**
 * Parses `HOST:PORT` (IPv6 in brackets: `[::1]:53`). `flag` names the option in error messages.
 */
export function parseHostPort(flag: string, value: string): HostPort {
  const bracketed = /^\[([^\]]+)\]:(\d+)$/.exec(value);
  const plain = /^([^:[\]]+):(\d+)$/.exec(value);
  const match = bracketed ?? plain;
  if (!match) {
    throw new Error(`${flag} must be HOST:PORT (IPv6 as [ADDR]:PORT), got "${value}"`);
  }
  const port = Number(match[2]);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`${flag}: port must be from 0 to 65535, got "${match[2]}"`);
  }
  return { host: match[1]!, port };
}

function describeError(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
