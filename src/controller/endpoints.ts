/**
 * Imported (MCS) EndpointSlices: which endpoints of an exporting cluster an importing cluster
 * receives, and how they are packed into slices.
 *
 * Two steps, so that "gateway mode" is an addition rather than a rewrite:
 * 1. {@link collectEndpointGroups} reduces one source cluster's Kubernetes-made slices to groups
 *    of endpoints sharing an address type and a set of *served* ports (mode-independent).
 * 2. {@link sliceBuilder} turns those groups into EndpointSlices for one importing cluster,
 *    according to the service's {@link EndpointMode}. Only pod mode exists today; a gateway mode
 *    would add a member to the union and a `case` that substitutes the importing cluster's
 *    gateway address for remote endpoints.
 */
import type { DiscoveryV1EndpointPort, V1Endpoint, V1EndpointSlice } from "@kubernetes/client-node";
import { LABEL_SERVICE_NAME } from "../api/mcs.js";
import { endpointSliceName } from "./names.js";
import { portRef } from "./ports.js";

/** Address types an imported slice may have; FQDN slices are not imported (deprecated, unused by kube-proxy). */
export type SliceAddressType = "IPv4" | "IPv6";

/**
 * Pod mode: an imported slice carries the exporting pods' own addresses. Needs pod networks that
 * reach each other (flat mode).
 */
export interface PodEndpointMode {
  readonly kind: "pod";
}

/** An importing cluster's own east-west gateway, as its imported slices point at it. */
export interface ImportingGateway {
  /** Ready addresses of the gateway's pods in the importing cluster. */
  readonly addresses: readonly { address: string; addressType: SliceAddressType }[];
  /** The gateway's listen port for each served port of the service, by `portRef(name, protocol)`. */
  readonly listenPorts: ReadonlyMap<string, number>;
}

/**
 * Gateway mode: in an importing cluster that runs a gateway, every other cluster's endpoints are
 * replaced by that gateway (one slice per source cluster, so `source-cluster` still says who
 * serves), on the port the gateway holds for the service port; its own endpoints stay pods.
 * Importing clusters without a gateway get pod slices.
 */
export interface GatewayEndpointMode {
  readonly kind: "gateway";
  readonly gateways: ReadonlyMap<string, ImportingGateway>;
}

/** How endpoints of exporting clusters are presented in an importing cluster. */
export type EndpointMode = PodEndpointMode | GatewayEndpointMode;

/** The default endpoint mode. */
export const POD_ENDPOINT_MODE: EndpointMode = { kind: "pod" };

/** Endpoints of one source cluster that share an address type and served ports. */
export interface EndpointGroup {
  addressType: SliceAddressType;
  /** Served ports, renamed to the merged port names, sorted by name, protocol, port. */
  ports: DiscoveryV1EndpointPort[];
  /** Endpoints sorted by first address, deduplicated by first address. */
  endpoints: V1Endpoint[];
}

/** One source cluster's contribution to a multi-cluster service. */
export interface SourceEndpoints {
  clusterId: string;
  groups: EndpointGroup[];
}

/** Everything about the service that slice objects need, fixed for one reconcile. */
export interface SliceContext {
  namespace: string;
  serviceName: string;
  /** Labels every imported slice carries besides `source-cluster` (service name, managed-by, …). */
  commonLabels: Readonly<Record<string, string>>;
  /** Label key for the source cluster ID (`multicluster.kubernetes.io/source-cluster`). */
  sourceClusterLabel: string;
  maxEndpointsPerSlice: number;
}

function isSliceAddressType(value: string): value is SliceAddressType {
  return value === "IPv4" || value === "IPv6";
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Keeps what means something in another cluster: addresses, readiness, hostname and zone. */
function importEndpoint(endpoint: V1Endpoint): V1Endpoint {
  const out: V1Endpoint = { addresses: [...endpoint.addresses] };
  const conditions = endpoint.conditions;
  if (conditions !== undefined) {
    out.conditions = {};
    if (conditions.ready !== undefined) out.conditions.ready = conditions.ready;
    if (conditions.serving !== undefined) out.conditions.serving = conditions.serving;
    if (conditions.terminating !== undefined) out.conditions.terminating = conditions.terminating;
  }
  if (endpoint.hostname !== undefined) out.hostname = endpoint.hostname;
  if (endpoint.zone !== undefined) out.zone = endpoint.zone;
  // nodeName, targetRef and hints name objects of the source cluster. kube-proxy would match
  // nodeName against its own nodes (clusters often share node names), so they are dropped.
  return out;
}

/**
 * Picks one of two endpoints with the same address (seen transiently while the EndpointSlice
 * controller moves an endpoint between slices) independently of the order they were seen in: the
 * ready one, else the one whose JSON sorts first.
 */
function preferredDuplicate(a: V1Endpoint, b: V1Endpoint): V1Endpoint {
  const notReadyA = a.conditions?.ready === false;
  const notReadyB = b.conditions?.ready === false;
  if (notReadyA !== notReadyB) return notReadyA ? b : a;
  return JSON.stringify(a) <= JSON.stringify(b) ? a : b;
}

/** Adds imported copies of `endpoints` to `byAddress`, keyed by first address. */
function addEndpoints(byAddress: Map<string, V1Endpoint>, endpoints: readonly V1Endpoint[]): void {
  for (const endpoint of endpoints) {
    const first = endpoint.addresses[0];
    if (first === undefined) continue;
    const imported = importEndpoint(endpoint);
    const seen = byAddress.get(first);
    if (seen === undefined || preferredDuplicate(imported, seen) === imported) byAddress.set(first, imported);
  }
}

function servedSlicePorts(
  ports: readonly DiscoveryV1EndpointPort[],
  served: ReadonlyMap<string, string>,
): DiscoveryV1EndpointPort[] {
  const out: DiscoveryV1EndpointPort[] = [];
  for (const port of ports) {
    const mergedName = served.get(portRef(port.name, port.protocol));
    if (mergedName === undefined) continue;
    const kept: DiscoveryV1EndpointPort = { protocol: port.protocol ?? "TCP" };
    if (mergedName !== "") kept.name = mergedName;
    if (port.port !== undefined) kept.port = port.port;
    if (port.appProtocol !== undefined) kept.appProtocol = port.appProtocol;
    out.push(kept);
  }
  return out.sort(
    (a, b) =>
      compareText(a.name ?? "", b.name ?? "") ||
      compareText(a.protocol ?? "", b.protocol ?? "") ||
      (a.port ?? -1) - (b.port ?? -1),
  );
}

function portsSignature(ports: readonly DiscoveryV1EndpointPort[]): string {
  return ports
    .map((p) => `${p.name ?? ""}/${p.protocol ?? ""}/${p.port ?? ""}/${p.appProtocol ?? ""}`)
    .join(",");
}

/**
 * Reduces one exporting cluster's Kubernetes-made EndpointSlices to endpoint groups.
 *
 * - Slices already labelled as MCS slices are skipped, so a mis-fed cache can never re-export
 *   imported endpoints.
 * - Slice ports are filtered to those the import serves (`served`, from the port merge) and renamed
 *   to the merged names kube-proxy matches on. A slice that had ports but keeps none is dropped:
 *   its endpoints serve no port of the import (StrictPortConflict). A slice without ports (a
 *   portless headless Service) is kept as it is.
 * - Ready and not-ready endpoints are both kept, conditions copied.
 * - An endpoint listed in several slices (transiently, during updates) appears once, the ready
 *   copy preferred.
 *
 * The result is independent of the order of `slices`.
 */
export function collectEndpointGroups(
  slices: readonly V1EndpointSlice[],
  served: ReadonlyMap<string, string>,
): EndpointGroup[] {
  const groups = new Map<string, { group: EndpointGroup; byAddress: Map<string, V1Endpoint> }>();
  for (const slice of slices) {
    if (slice.metadata?.labels?.[LABEL_SERVICE_NAME] !== undefined) continue;
    if (!isSliceAddressType(slice.addressType)) continue;
    const sourcePorts = slice.ports ?? [];
    const ports = servedSlicePorts(sourcePorts, served);
    if (sourcePorts.length > 0 && ports.length === 0) continue;
    const groupKey = `${slice.addressType}|${portsSignature(ports)}`;
    let entry = groups.get(groupKey);
    if (entry === undefined) {
      entry = { group: { addressType: slice.addressType, ports, endpoints: [] }, byAddress: new Map() };
      groups.set(groupKey, entry);
    }
    // A Service without pods has a slice whose endpoints are null.
    addEndpoints(entry.byAddress, slice.endpoints ?? []);
  }
  const result: EndpointGroup[] = [];
  for (const [, { group, byAddress }] of [...groups].sort(([a], [b]) => compareText(a, b))) {
    if (byAddress.size === 0) continue;
    group.endpoints = [...byAddress].sort(([a], [b]) => compareText(a, b)).map(([, endpoint]) => endpoint);
    result.push(group);
  }
  return result;
}

/** An imported slice: one source cluster's endpoints, named after the service, source and `part`. */
function importedSlice(
  context: SliceContext,
  sourceClusterId: string,
  part: string,
  content: Pick<V1EndpointSlice, "addressType" | "endpoints" | "ports">,
): V1EndpointSlice {
  return {
    apiVersion: "discovery.k8s.io/v1",
    kind: "EndpointSlice",
    metadata: {
      name: endpointSliceName(context.namespace, context.serviceName, sourceClusterId, part),
      namespace: context.namespace,
      labels: { ...context.commonLabels, [context.sourceClusterLabel]: sourceClusterId },
    },
    ...content,
  };
}

/** Pod mode: the groups as they are, chunked to at most `maxEndpointsPerSlice` endpoints a slice. */
function podSlices(source: SourceEndpoints, context: SliceContext): V1EndpointSlice[] {
  const slices: V1EndpointSlice[] = [];
  for (const group of source.groups) {
    const signature = `${group.addressType}|${portsSignature(group.ports)}`;
    for (
      let start = 0, chunk = 0;
      start < group.endpoints.length;
      start += context.maxEndpointsPerSlice, chunk++
    ) {
      slices.push(
        importedSlice(context, source.clusterId, `${signature}#${chunk}`, {
          addressType: group.addressType,
          endpoints: group.endpoints.slice(start, start + context.maxEndpointsPerSlice),
          ports: group.ports,
        }),
      );
    }
  }
  return slices;
}

/**
 * Builds the EndpointSlices an importing cluster holds for one source cluster's endpoints. Each
 * slice holds endpoints of exactly one source cluster. Results may be shared between importing
 * clusters: treat them as read-only.
 */
export type SliceBuilder = (
  importingClusterId: string,
  source: SourceEndpoints,
) => readonly V1EndpointSlice[];

/**
 * The {@link SliceBuilder} for `mode`, for one reconcile. In pod mode the slices do not depend on
 * the importing cluster, so each source's slices are built once and shared by every importing
 * cluster (10 members × 1,000 services would otherwise build every slice 10 times).
 */
export function sliceBuilder(mode: EndpointMode, context: SliceContext): SliceBuilder {
  const built = new Map<string, V1EndpointSlice[]>();
  const pods: SliceBuilder = (_importingClusterId, source) => {
    let slices = built.get(source.clusterId);
    if (slices === undefined) {
      slices = podSlices(source, context);
      built.set(source.clusterId, slices);
    }
    return slices;
  };
  switch (mode.kind) {
    case "pod":
      return pods;
    case "gateway":
      return (importingClusterId, source) => {
        const gateway = mode.gateways.get(importingClusterId);
        if (!gateway || source.clusterId === importingClusterId) return pods(importingClusterId, source);
        return gatewaySlices(source, gateway, context);
      };
  }
}

/** One slice per address type of the gateway, ready while the source has a ready endpoint. */
function gatewaySlices(
  source: SourceEndpoints,
  gateway: ImportingGateway,
  context: SliceContext,
): V1EndpointSlice[] {
  const ports = new Map<string, DiscoveryV1EndpointPort>();
  for (const group of source.groups) {
    for (const port of group.ports) {
      const ref = portRef(port.name, port.protocol);
      const listenPort = gateway.listenPorts.get(ref);
      if (listenPort === undefined) continue;
      ports.set(ref, { ...port, port: listenPort });
    }
  }
  if (ports.size === 0) return [];
  const ready = source.groups.some((g) => g.endpoints.some((e) => e.conditions?.ready !== false));
  const slices: V1EndpointSlice[] = [];
  for (const addressType of ["IPv4", "IPv6"] as const) {
    const addresses = gateway.addresses.filter((a) => a.addressType === addressType).map((a) => a.address);
    if (addresses.length === 0) continue;
    slices.push(
      importedSlice(context, source.clusterId, `gateway|${addressType}`, {
        addressType,
        endpoints: [...addresses]
          .sort(compareText)
          .map((address) => ({ addresses: [address], conditions: { ready } })),
        ports: [...ports.values()].sort(
          (a, b) =>
            compareText(a.name ?? "", b.name ?? "") || compareText(a.protocol ?? "", b.protocol ?? ""),
        ),
      }),
    );
  }
  return slices;
}
