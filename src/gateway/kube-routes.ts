/**
 * The routing table from a member's own API server: what it imports (ServiceImports and the MCS
 * EndpointSlices the controller wrote), what it exports (ServiceExports, their Services and
 * Kubernetes' own EndpointSlices), TrafficPolicies, and the peer gateways the controller lists in
 * the `meridian-gateway-peers` ConfigMap. Nothing comes from the hub, so a gateway keeps routing
 * while the hub is down.
 *
 * `routingTableFrom` is the pure part; `KubernetesRoutingSource` watches and feeds it.
 */
import type { KubernetesObject, V1ConfigMap, V1EndpointSlice, V1Service } from "@kubernetes/client-node";
import {
  LABEL_SERVICE_NAME,
  LABEL_SOURCE_CLUSTER,
  type ServiceExport,
  type ServiceImport,
} from "../api/mcs.js";
import { ANNOTATION_GATEWAY_LISTEN_PORTS, MEMBER_NAMESPACE, parseListenPorts } from "../api/meridian.js";
import { portRef } from "../controller/ports.js";
import { Reflector } from "../kube/reflector.js";
import { Resources, type RestClient } from "../kube/rest.js";
import type { AccessDefault, AccessEntry } from "./access.js";
import { allowedItems, parseAllowedConsumers } from "./access.js";
import type { TrafficPolicySpec } from "./policy.js";
import type {
  Endpoint,
  ExportRoute,
  ImportRoute,
  PeerGateway,
  RoutingSource,
  RoutingTable,
} from "./routes.js";
import { gatewayCarries } from "./protocol.js";
import { routeKey, validateRoutingTable } from "./routes.js";

/** The ConfigMap (in `meridian-system`) where the controller lists every member's gateway. */
export const PEERS_CONFIGMAP = "meridian-gateway-peers";
export const PEERS_KEY = "peers.json";
/**
 * On a ServiceExport: who may consume it, comma-separated: a cluster ID (all of that cluster),
 * `cluster/namespace` (clients in that namespace only) or `*`; absent: the clusterset default.
 */
export const ANNOTATION_ALLOWED_CLUSTERS = "gateway.meridian.dev/allowed-clusters";
/**
 * On a ServiceImport (set it through the ServiceExport's `spec.exportedAnnotations`): `flat` keeps
 * the gateways out of the path, for clusters whose pod networks are routed to each other; clients
 * then reach the exporters' pods directly through the import's EndpointSlices.
 */
export const ANNOTATION_MODE = "gateway.meridian.dev/mode";
/**
 * On a ServiceImport (through the ServiceExport's `spec.exportedAnnotations`): seconds a UDP flow
 * of this service lives without a datagram, instead of the gateway's `--udp-flow-timeout`. Short
 * for request/response protocols whose clients use a new port per request (DNS), where every
 * request is a flow that would otherwise hold a stream until the timeout.
 */
export const ANNOTATION_UDP_FLOW_TIMEOUT = "gateway.meridian.dev/udp-flow-timeout";
const LABEL_KUBERNETES_SERVICE_NAME = "kubernetes.io/service-name";

export type TrafficPolicy = KubernetesObject & {
  spec: TrafficPolicySpec & { serviceRef: { name: string } };
};

export interface MemberRoutingState {
  clusterId: string;
  serviceImports: Iterable<ServiceImport & KubernetesObject>;
  /** Every EndpointSlice of the member: the MCS ones and Kubernetes' own. */
  endpointSlices: Iterable<V1EndpointSlice>;
  serviceExports: Iterable<ServiceExport & KubernetesObject>;
  services: Iterable<V1Service>;
  trafficPolicies: Iterable<TrafficPolicy>;
  peers: PeerGateway[];
  accessDefault?: AccessDefault;
  /**
   * Where local clients reach an imported service: on its ClusterSetIP (local mode: the gateway
   * stands in for kube-proxy) or on a port the gateway picks (0), for a Service to point at.
   */
  listenOn: "cluster-set-ip" | "gateway-port";
}

const key = (namespace: string | undefined, name: string | undefined): string => `${namespace}/${name}`;

function groupBy<T>(items: Iterable<T>, keyOf: (item: T) => string | undefined): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const item of items) {
    const k = keyOf(item);
    if (k === undefined) continue;
    const list = out.get(k);
    if (list) list.push(item);
    else out.set(k, [item]);
  }
  return out;
}

type ServicePortRef = { name?: string; protocol?: string };

/** The port a slice gives a service port: by name, else the slice's only port if of the same protocol. */
function slicePort(slice: V1EndpointSlice, servicePort: ServicePortRef): number | undefined {
  const named = slice.ports?.find((p) => (p.name ?? "") === (servicePort.name ?? ""));
  if (named) return named.port;
  const only = slice.ports?.length === 1 ? slice.ports[0]! : undefined;
  return only && (only.protocol ?? "TCP") === (servicePort.protocol ?? "TCP") ? only.port : undefined;
}

/** Ready endpoint addresses of slices, with the port each slice gives the service port (else `fallbackPort`). */
function sliceEndpoints(
  slices: V1EndpointSlice[],
  servicePort: ServicePortRef,
  fallbackPort?: number,
): Endpoint[] {
  const out: Endpoint[] = [];
  for (const slice of slices) {
    const port = slicePort(slice, servicePort) ?? fallbackPort;
    if (port === undefined) continue;
    for (const ep of slice.endpoints ?? []) {
      const ready = ep.conditions?.ready !== false;
      for (const address of ep.addresses) out.push({ address, port, ready });
    }
  }
  return out;
}

function preferredIp(ips: string[] | undefined): string | undefined {
  return ips?.find((ip) => !ip.includes(":")) ?? ips?.[0];
}

function importRoutes(
  state: MemberRoutingState,
  mcsSlices: Map<string, V1EndpointSlice[]>,
  problems: string[],
): ImportRoute[] {
  const policies = new Map(
    [...state.trafficPolicies].map((p) => [key(p.metadata?.namespace, p.spec.serviceRef?.name), p.spec]),
  );
  const routes = [...state.serviceImports].flatMap((si) =>
    routesOfImport(state, si, mcsSlices, policies, problems),
  );
  return routes.sort(byRouteKey);
}

const byRouteKey = (a: ImportRoute | ExportRoute, b: ImportRoute | ExportRoute): number =>
  routeKey(a.service, a.port, a.protocol).localeCompare(routeKey(b.service, b.port, b.protocol));

/** A Service port's protocol on a route: UDP said, TCP left as the default. */
const protocolOf = (protocol: string | undefined): Pick<ImportRoute, "protocol"> =>
  protocol === "UDP" ? { protocol: "UDP" } : {};

/** Longest flow timeout the annotation takes: a day (a flow is meant to end when idle). */
const MAX_UDP_FLOW_TIMEOUT_SECONDS = 86_400;

/** The import's own UDP flow timeout, if it sets a valid one; an invalid one is a problem, named. */
function udpFlowTimeout(
  si: ServiceImport & KubernetesObject,
  problems: string[],
): Pick<ImportRoute, "udpFlowIdleMs"> {
  const raw = si.metadata?.annotations?.[ANNOTATION_UDP_FLOW_TIMEOUT];
  if (raw === undefined) return {};
  const seconds = Number(raw);
  if (raw.trim() !== "" && seconds > 0 && seconds <= MAX_UDP_FLOW_TIMEOUT_SECONDS)
    return { udpFlowIdleMs: Math.round(seconds * 1000) };
  problems.push(
    `ServiceImport ${key(si.metadata?.namespace, si.metadata?.name)}: ${ANNOTATION_UDP_FLOW_TIMEOUT} is ` +
      `"${raw}", not a number of seconds above 0 and at most ${MAX_UDP_FLOW_TIMEOUT_SECONDS}; ` +
      `its UDP flows use the gateway's --udp-flow-timeout`,
  );
  return {};
}

/** One ServiceImport's routes: one per TCP or UDP port this member's gateway serves it on. */
function routesOfImport(
  state: MemberRoutingState,
  si: ServiceImport & KubernetesObject,
  mcsSlices: Map<string, V1EndpointSlice[]>,
  policies: Map<string, TrafficPolicy["spec"]>,
  problems: string[],
): ImportRoute[] {
  const listen = importListener(state, si);
  if (!listen) return [];
  const ports = si.spec.ports ?? [];
  const flowTimeout = ports.some((p) => p.protocol === "UDP") ? udpFlowTimeout(si, problems) : {};
  const service = key(si.metadata?.namespace, si.metadata?.name);
  const bySource = [
    ...groupBy(mcsSlices.get(service) ?? [], (s) => s.metadata?.labels?.[LABEL_SOURCE_CLUSTER]),
  ].sort(([a], [b]) => a.localeCompare(b));
  const policy = policies.get(service);
  const routes: ImportRoute[] = [];
  for (const port of ports) {
    if (!gatewayCarries(port.protocol)) continue;
    const listenPort = listen.allocated.get(portRef(port.name, port.protocol));
    if (listen.allocated.size > 0 && listenPort === undefined) continue;
    routes.push({
      service,
      port: port.port,
      ...protocolOf(port.protocol),
      ...(port.protocol === "UDP" ? flowTimeout : {}),
      ...listenAddress(state.listenOn, listen.vip, port.port, listenPort),
      ...routeTargets(state.clusterId, bySource, port),
      ...(policy ? { policy: withoutServiceRef(policy) } : {}),
    });
  }
  return routes;
}

/**
 * What this member's gateway can listen on for an import: its ClusterSetIP and the ports the
 * controller allocated (where this member's slices point at the gateway itself); undefined when it
 * serves the import not at all.
 */
function importListener(
  state: MemberRoutingState,
  si: ServiceImport & KubernetesObject,
): { vip: string | undefined; allocated: Map<string, number> } | undefined {
  // Headless imports name pods directly: without a flat network there is nothing to route.
  if (si.spec.type !== "ClusterSetIP" || si.metadata?.annotations?.[ANNOTATION_MODE] === "flat")
    return undefined;
  const vip = preferredIp(si.spec.ips);
  const allocated = parseListenPorts(si.metadata?.annotations?.[ANNOTATION_GATEWAY_LISTEN_PORTS]);
  if (allocated.size === 0 && state.listenOn === "cluster-set-ip" && !vip) return undefined;
  return { vip, allocated };
}

/**
 * Where the gateway listens for an import's port: the port the controller allocated, else the
 * ClusterSetIP and the service port (when the gateway serves ClusterSetIPs), else any free port.
 */
function listenAddress(
  listenOn: MemberRoutingState["listenOn"],
  vip: string | undefined,
  servicePort: number,
  allocatedPort: number | undefined,
): Pick<ImportRoute, "listenHost" | "listenPort"> {
  if (allocatedPort !== undefined) return { listenPort: allocatedPort };
  if (listenOn === "cluster-set-ip") return { listenHost: vip, listenPort: servicePort };
  return { listenPort: 0 };
}

/** Remote clusters with their ready endpoint counts; this cluster's own endpoints, reached directly. */
function routeTargets(
  self: string,
  bySource: Array<[string, V1EndpointSlice[]]>,
  servicePort: ServicePortRef,
): Pick<ImportRoute, "clusters" | "localEndpoints"> {
  const clusters: ImportRoute["clusters"] = [];
  let localEndpoints: Endpoint[] | undefined;
  for (const [clusterId, slices] of bySource) {
    const endpoints = sliceEndpoints(slices, servicePort);
    if (clusterId === self) localEndpoints = endpoints;
    else clusters.push({ clusterId, readyEndpoints: endpoints.filter((e) => e.ready !== false).length });
  }
  return { clusters, ...(localEndpoints ? { localEndpoints } : {}) };
}

function withoutServiceRef(spec: TrafficPolicy["spec"]): TrafficPolicySpec {
  const { serviceRef: _ignored, ...rest } = spec;
  return rest;
}

function allowList(exp: ServiceExport & KubernetesObject, problems: string[]): AccessEntry[] | undefined {
  const raw = exp.metadata?.annotations?.[ANNOTATION_ALLOWED_CLUSTERS];
  if (raw === undefined) return undefined;
  const { entries, invalid } = parseAllowedConsumers(allowedItems(raw));
  if (invalid.length > 0)
    problems.push(
      `ServiceExport ${key(exp.metadata?.namespace, exp.metadata?.name)}: ${ANNOTATION_ALLOWED_CLUSTERS} ` +
        `has ${invalid.map((i) => `"${i}"`).join(", ")}, which allow nothing ` +
        `(write a cluster ID, cluster/namespace, or * for every cluster)`,
    );
  return entries;
}

function exportRoutes(
  state: MemberRoutingState,
  ownSlices: Map<string, V1EndpointSlice[]>,
  problems: string[],
): ExportRoute[] {
  const services = new Map([...state.services].map((s) => [key(s.metadata?.namespace, s.metadata?.name), s]));
  const routes: ExportRoute[] = [];
  for (const exp of state.serviceExports) {
    const service = key(exp.metadata?.namespace, exp.metadata?.name);
    const svc = services.get(service);
    if (!svc) continue;
    const allow = allowList(exp, problems);
    for (const port of svc.spec?.ports ?? []) {
      if (!gatewayCarries(port.protocol)) continue;
      const target = typeof port.targetPort === "number" ? port.targetPort : undefined;
      routes.push({
        service,
        port: port.port,
        ...protocolOf(port.protocol),
        endpoints: sliceEndpoints(ownSlices.get(service) ?? [], port, target ?? port.port),
        ...(allow ? { allow } : {}),
      });
    }
  }
  return routes.sort(byRouteKey);
}

/**
 * The routing table of one member's gateway, from that member's objects alone. What it had to
 * leave out or narrow goes to `problems`, one line per object, naming it.
 */
export function routingTableFrom(state: MemberRoutingState, problems: string[] = []): RoutingTable {
  const slices = [...state.endpointSlices];
  const mcsSlices = groupBy(slices, (s) => {
    const name = s.metadata?.labels?.[LABEL_SERVICE_NAME];
    return name === undefined ? undefined : key(s.metadata?.namespace, name);
  });
  const ownSlices = groupBy(slices, (s) => {
    const name = s.metadata?.labels?.[LABEL_KUBERNETES_SERVICE_NAME];
    return name === undefined || s.metadata?.labels?.[LABEL_SERVICE_NAME] !== undefined
      ? undefined
      : key(s.metadata?.namespace, name);
  });
  return {
    peers: state.peers.filter((p) => p.clusterId !== state.clusterId),
    imports: importRoutes(state, mcsSlices, problems),
    exports: exportRoutes(state, ownSlices, problems),
    ...(state.accessDefault ? { accessDefault: state.accessDefault } : {}),
  };
}

/** Reads the peers ConfigMap; errors name the field. */
export function parsePeers(configMap: V1ConfigMap | undefined): { peers: PeerGateway[]; error?: string } {
  const raw = configMap?.data?.[PEERS_KEY];
  if (raw === undefined) return { peers: [] };
  try {
    const peers = JSON.parse(raw) as PeerGateway[];
    const errors = validateRoutingTable({ peers, imports: [], exports: [] });
    if (errors.length > 0) return { peers: [], error: errors.join("; ") };
    return { peers };
  } catch (err) {
    return { peers: [], error: `${PEERS_KEY} is not JSON: ${(err as Error).message}` };
  }
}

export interface KubernetesRoutingSourceOptions {
  clusterId: string;
  listenOn: MemberRoutingState["listenOn"];
  accessDefault?: AccessDefault;
  /** Told about a peers ConfigMap it cannot use (the last good peers are kept). */
  onError?: (message: string) => void;
  /** Told once about each object the table had to leave out or narrow, while it stays so. */
  onProblem?: (message: string) => void;
  /** Coalesces bursts of events into one table (ms). */
  debounceMs?: number;
}

export class KubernetesRoutingSource implements RoutingSource {
  private readonly imports: Reflector<ServiceImport & KubernetesObject>;
  private readonly slices: Reflector<V1EndpointSlice>;
  private readonly exports: Reflector<ServiceExport & KubernetesObject>;
  private readonly services: Reflector<V1Service>;
  private readonly policies: Reflector<TrafficPolicy>;
  private readonly peersMap: Reflector<V1ConfigMap>;
  private readonly listeners = new Set<(table: RoutingTable) => void>();
  private table: RoutingTable = { peers: [], imports: [], exports: [] };
  private peers: PeerGateway[] = [];
  private problems = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private started = false;

  constructor(
    rest: RestClient,
    private readonly opts: KubernetesRoutingSourceOptions,
  ) {
    const onEvent = (): void => this.schedule();
    this.imports = new Reflector(rest, Resources.serviceImports, { onEvent });
    this.slices = new Reflector(rest, Resources.endpointSlices, { onEvent });
    this.exports = new Reflector(rest, Resources.serviceExports, { onEvent });
    this.services = new Reflector(rest, Resources.services, { onEvent });
    this.policies = new Reflector(rest, Resources.trafficPolicies, { onEvent });
    this.peersMap = new Reflector(rest, Resources.configMaps, {
      namespace: MEMBER_NAMESPACE,
      fieldSelector: `metadata.name=${PEERS_CONFIGMAP}`,
      onEvent,
    });
  }

  private get reflectors(): Reflector[] {
    return [
      this.imports,
      this.slices,
      this.exports,
      this.services,
      this.policies,
      this.peersMap,
    ] as Reflector[];
  }

  current(): RoutingTable {
    return this.table;
  }

  subscribe(listener: (table: RoutingTable) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Resolves once every cache has its first list, with the first table built. */
  async start(): Promise<void> {
    for (const r of this.reflectors) r.start();
    await Promise.all(this.reflectors.map((r) => r.waitForSync(60_000)));
    this.started = true;
    this.rebuild();
  }

  stop(): void {
    clearTimeout(this.timer);
    for (const r of this.reflectors) void r.stop();
  }

  private schedule(): void {
    if (!this.started || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.rebuild();
    }, this.opts.debounceMs ?? 20);
  }

  private rebuild(): void {
    const parsed = parsePeers(this.peersMap.get(MEMBER_NAMESPACE, PEERS_CONFIGMAP));
    if (parsed.error)
      this.opts.onError?.(`ConfigMap ${MEMBER_NAMESPACE}/${PEERS_CONFIGMAP}: ${parsed.error}`);
    else this.peers = parsed.peers;
    const problems: string[] = [];
    this.table = routingTableFrom(
      {
        clusterId: this.opts.clusterId,
        serviceImports: this.imports.values(),
        endpointSlices: this.slices.values(),
        serviceExports: this.exports.values(),
        services: this.services.values(),
        trafficPolicies: this.policies.values(),
        peers: this.peers,
        listenOn: this.opts.listenOn,
        ...(this.opts.accessDefault ? { accessDefault: this.opts.accessDefault } : {}),
      },
      problems,
    );
    for (const p of problems) if (!this.problems.has(p)) this.opts.onProblem?.(p);
    this.problems = new Set(problems);
    for (const l of this.listeners) l(this.table);
  }
}
