/**
 * The in-memory index behind `clusterset.local`: informers (owned by the caller) feed it upserts and
 * deletes of ServiceImports, MCS EndpointSlices and Namespaces; the resolver reads it.
 *
 * Only what DNS needs is kept (names, type, VIPs, ports, ready addresses with their generated
 * hostnames), parsed once here so the query path does no parsing. Every update costs O(size of the
 * changed object): objects are keyed by namespace/name, and an EndpointSlice remembers which service
 * it was filed under so a relabel moves it without a scan.
 */
import type { V1Endpoint, V1EndpointSlice, V1Namespace } from "@kubernetes/client-node";
import { LABEL_SERVICE_NAME, LABEL_SOURCE_CLUSTER } from "../api/mcs.js";
import type { ServiceImport } from "../api/mcs.js";
import { hostnameFromIp, parseIp } from "./ip.js";
import type { ParsedIp } from "./ip.js";

/** A port as DNS matches it: `_name._protocol`, compared case-insensitively. */
export interface IndexedPort {
  /** Port name; "" for an unnamed port. */
  readonly nameLower: string;
  /** Protocol in lower case (`tcp`, `udp`, `sctp`). */
  readonly protocolLower: string;
  /**
   * Port number, or -1 for the sentinel CoreDNS adds to a slice without ports (or a port without a
   * number): such a candidate yields A/AAAA answers but no SRV record.
   */
  readonly port: number;
}

/** A ready endpoint address. */
export interface IndexedAddress {
  readonly ip: ParsedIp;
  /** Endpoint hostname, else generated from the address (see {@link hostnameFromIp}). */
  readonly hostname: string;
  readonly hostnameLower: string;
}

/** What DNS needs from one MCS EndpointSlice. */
export interface IndexedSlice {
  /** Value of the `multicluster.kubernetes.io/source-cluster` label ("" when absent). */
  readonly clusterId: string;
  readonly clusterIdLower: string;
  readonly ports: readonly IndexedPort[];
  /** Ready addresses only (`conditions.ready` true or unset), in slice order. */
  readonly addresses: readonly IndexedAddress[];
}

/** What DNS needs from one ServiceImport. */
export interface IndexedImport {
  /** Name and namespace as stored in the object (used in SRV targets, as CoreDNS does). */
  readonly name: string;
  readonly namespace: string;
  readonly headless: boolean;
  readonly ports: readonly IndexedPort[];
  /** Parsed `spec.ips`, in order; unparsable entries are dropped. */
  readonly ips: readonly ParsedIp[];
}

/** Everything indexed under one `<service>.<namespace>`. Slices may arrive before their import. */
export interface ServiceEntry {
  readonly serviceImport: IndexedImport | undefined;
  /** Keyed by EndpointSlice name; iteration order is insertion order. */
  readonly slices: ReadonlyMap<string, IndexedSlice>;
}

/** The read-only view the resolver needs. Keys are lower case. */
export interface ZoneView {
  /** False until the caller's informers have listed everything; NXDOMAIN becomes SERVFAIL meanwhile. */
  readonly synced: boolean;
  /** SOA serial: Unix seconds of the last DNS-relevant ServiceImport or EndpointSlice change. */
  readonly serial: number;
  hasNamespace(namespaceLower: string): boolean;
  service(namespaceLower: string, nameLower: string): ServiceEntry | undefined;
}

/** Options for {@link ClusterSetZone}. */
export interface ClusterSetZoneOptions {
  /** Clock in milliseconds (injectable for tests); defaults to `Date.now`. */
  readonly now?: () => number;
  /**
   * CoreDNS `endpoint_pod_names`: name endpoints without `hostname` after their target Pod instead
   * of their address.
   */
  readonly endpointPodNames?: boolean;
}

/** Counts for metrics and debugging. */
export interface ZoneStats {
  readonly namespaces: number;
  readonly serviceImports: number;
  readonly endpointSlices: number;
  readonly readyAddresses: number;
}

interface MutableServiceEntry extends ServiceEntry {
  serviceImport: IndexedImport | undefined;
  readonly slices: Map<string, IndexedSlice>;
}

/** Where a slice is filed: its namespace and the service-name label value, both lower case. */
interface SliceLocation {
  readonly namespaceLower: string;
  readonly serviceLower: string;
  readonly sliceName: string;
}

const DEFAULT_PROTOCOL = "tcp";
const SENTINEL_PORTS: readonly IndexedPort[] = Object.freeze([
  Object.freeze({ nameLower: "", protocolLower: "", port: -1 }),
]);

/**
 * The `clusterset.local` index. Feed it from informers; hand it to {@link resolve} or the server.
 *
 * Names are matched case-insensitively, so every key is lower case; the original spelling is kept
 * where CoreDNS writes object data into answers (SRV targets).
 */
export class ClusterSetZone implements ZoneView {
  private readonly namespaces = new Set<string>();
  private readonly services = new Map<string, Map<string, MutableServiceEntry>>();
  /** `namespace/slice-name` → where that slice is filed, so relabels and deletes are O(1). */
  private readonly sliceLocations = new Map<string, SliceLocation>();
  private readonly now: () => number;
  private readonly endpointPodNames: boolean;
  private syncedState = false;
  private serialSeconds: number;

  constructor(options: ClusterSetZoneOptions = {}) {
    this.now = options.now ?? Date.now;
    this.endpointPodNames = options.endpointPodNames ?? false;
    this.serialSeconds = this.nowSeconds();
  }

  /** @inheritDoc */
  get synced(): boolean {
    return this.syncedState;
  }

  /** @inheritDoc */
  get serial(): number {
    return this.serialSeconds;
  }

  /** Records whether the caller's caches have completed their initial list. */
  setSynced(synced: boolean): void {
    this.syncedState = synced;
  }

  /** @inheritDoc */
  hasNamespace(namespaceLower: string): boolean {
    return this.namespaces.has(namespaceLower);
  }

  /** @inheritDoc */
  service(namespaceLower: string, nameLower: string): ServiceEntry | undefined {
    return this.services.get(namespaceLower)?.get(nameLower);
  }

  /** Adds or replaces a Namespace (existence is all DNS needs). */
  upsertNamespace(namespace: V1Namespace | string): void {
    const name = typeof namespace === "string" ? namespace : namespace.metadata?.name;
    if (name) this.namespaces.add(name.toLowerCase());
  }

  /** Removes a Namespace. Objects inside it stay indexed; they just stop resolving, as in CoreDNS. */
  deleteNamespace(name: string): void {
    this.namespaces.delete(name.toLowerCase());
  }

  /** Adds or replaces a ServiceImport. Returns false when the object lacks a name or namespace. */
  upsertServiceImport(serviceImport: ServiceImport): boolean {
    const name = serviceImport.metadata.name;
    const namespace = serviceImport.metadata.namespace;
    if (!name || !namespace) return false;
    const indexed = indexServiceImport(name, namespace, serviceImport);
    const entry = this.entry(namespace.toLowerCase(), name.toLowerCase(), true);
    const previous = entry.serviceImport;
    entry.serviceImport = indexed;
    if (!previous || !sameImport(previous, indexed)) this.touch();
    return true;
  }

  /** Removes a ServiceImport; its slices stay until they are deleted themselves. */
  deleteServiceImport(namespace: string, name: string): void {
    const namespaceLower = namespace.toLowerCase();
    const nameLower = name.toLowerCase();
    const entry = this.entry(namespaceLower, nameLower, false);
    if (!entry?.serviceImport) return;
    entry.serviceImport = undefined;
    this.dropIfEmpty(namespaceLower, nameLower, entry);
    this.touch();
  }

  /**
   * Adds or replaces an EndpointSlice. A slice without the `multicluster.kubernetes.io/service-name`
   * label is not an MCS slice: if it was indexed before (label removed), it is removed. Returns
   * whether the slice is indexed afterwards.
   */
  upsertEndpointSlice(slice: V1EndpointSlice): boolean {
    const sliceName = slice.metadata?.name;
    const namespace = slice.metadata?.namespace;
    if (!sliceName || !namespace) return false;
    const serviceName = slice.metadata?.labels?.[LABEL_SERVICE_NAME];
    if (!serviceName) {
      this.deleteEndpointSlice(namespace, sliceName);
      return false;
    }
    const location: SliceLocation = {
      namespaceLower: namespace.toLowerCase(),
      serviceLower: serviceName.toLowerCase(),
      sliceName,
    };
    const locationKey = `${location.namespaceLower}/${sliceName}`;
    const previousLocation = this.sliceLocations.get(locationKey);
    let changed = false;
    if (previousLocation && previousLocation.serviceLower !== location.serviceLower) {
      changed = this.removeSlice(previousLocation);
    }
    const indexed = indexEndpointSlice(slice, this.endpointPodNames);
    const entry = this.entry(location.namespaceLower, location.serviceLower, true);
    const previous = entry.slices.get(sliceName);
    entry.slices.set(sliceName, indexed);
    this.sliceLocations.set(locationKey, location);
    if (changed || !previous || !sameSlice(previous, indexed)) this.touch();
    return true;
  }

  /** Removes an EndpointSlice by namespace and name. */
  deleteEndpointSlice(namespace: string, name: string): void {
    const locationKey = `${namespace.toLowerCase()}/${name}`;
    const location = this.sliceLocations.get(locationKey);
    if (!location) return;
    this.sliceLocations.delete(locationKey);
    if (this.removeSlice(location)) this.touch();
  }

  /** Replaces all Namespaces after a (re)list. */
  replaceNamespaces(namespaces: readonly (V1Namespace | string)[]): void {
    this.namespaces.clear();
    for (const namespace of namespaces) this.upsertNamespace(namespace);
  }

  /** Replaces all ServiceImports after a (re)list: upserts the list and deletes what is missing. */
  replaceServiceImports(serviceImports: readonly ServiceImport[]): void {
    const keep = new Set<string>();
    for (const item of serviceImports) {
      if (this.upsertServiceImport(item)) {
        keep.add(`${item.metadata.namespace?.toLowerCase()}/${item.metadata.name?.toLowerCase()}`);
      }
    }
    for (const [namespaceLower, byName] of [...this.services]) {
      for (const [nameLower, entry] of [...byName]) {
        if (entry.serviceImport && !keep.has(`${namespaceLower}/${nameLower}`)) {
          this.deleteServiceImport(namespaceLower, nameLower);
        }
      }
    }
  }

  /** Replaces all EndpointSlices after a (re)list: upserts the list and deletes what is missing. */
  replaceEndpointSlices(slices: readonly V1EndpointSlice[]): void {
    const keep = new Set<string>();
    for (const slice of slices) {
      if (this.upsertEndpointSlice(slice)) {
        keep.add(`${slice.metadata?.namespace?.toLowerCase()}/${slice.metadata?.name}`);
      }
    }
    for (const [locationKey, location] of [...this.sliceLocations]) {
      if (!keep.has(locationKey)) {
        this.sliceLocations.delete(locationKey);
        if (this.removeSlice(location)) this.touch();
      }
    }
  }

  /** Counts of indexed objects. O(number of services). */
  stats(): ZoneStats {
    let serviceImports = 0;
    let readyAddresses = 0;
    for (const byName of this.services.values()) {
      for (const entry of byName.values()) {
        if (entry.serviceImport) serviceImports++;
        for (const slice of entry.slices.values()) readyAddresses += slice.addresses.length;
      }
    }
    return {
      namespaces: this.namespaces.size,
      serviceImports,
      endpointSlices: this.sliceLocations.size,
      readyAddresses,
    };
  }

  private nowSeconds(): number {
    return Math.floor(this.now() / 1000);
  }

  private touch(): void {
    this.serialSeconds = this.nowSeconds();
  }

  private entry(namespaceLower: string, nameLower: string, create: true): MutableServiceEntry;
  private entry(namespaceLower: string, nameLower: string, create: false): MutableServiceEntry | undefined;
  private entry(namespaceLower: string, nameLower: string, create: boolean): MutableServiceEntry | undefined {
    let byName = this.services.get(namespaceLower);
    if (!byName) {
      if (!create) return undefined;
      byName = new Map();
      this.services.set(namespaceLower, byName);
    }
    let entry = byName.get(nameLower);
    if (!entry && create) {
      entry = { serviceImport: undefined, slices: new Map() };
      byName.set(nameLower, entry);
    }
    return entry;
  }

  /** Returns whether something was removed. */
  private removeSlice(location: SliceLocation): boolean {
    const entry = this.entry(location.namespaceLower, location.serviceLower, false);
    if (!entry?.slices.delete(location.sliceName)) return false;
    this.dropIfEmpty(location.namespaceLower, location.serviceLower, entry);
    return true;
  }

  private dropIfEmpty(namespaceLower: string, nameLower: string, entry: MutableServiceEntry): void {
    if (entry.serviceImport || entry.slices.size > 0) return;
    const byName = this.services.get(namespaceLower);
    byName?.delete(nameLower);
    if (byName?.size === 0) this.services.delete(namespaceLower);
  }
}

function indexServiceImport(name: string, namespace: string, serviceImport: ServiceImport): IndexedImport {
  const spec = serviceImport.spec ?? { ports: [], type: "ClusterSetIP" };
  const ports: IndexedPort[] = [];
  for (const port of spec.ports ?? []) {
    ports.push({
      nameLower: (port.name ?? "").toLowerCase(),
      // The CRD defaults protocol to TCP, so an object straight from the API server always has it.
      protocolLower: (port.protocol ?? DEFAULT_PROTOCOL).toLowerCase(),
      port: port.port,
    });
  }
  const ips: ParsedIp[] = [];
  for (const text of spec.ips ?? []) {
    const ip = parseIp(text);
    if (ip) ips.push(ip);
  }
  return { name, namespace, headless: spec.type === "Headless", ports, ips };
}

function indexEndpointSlice(slice: V1EndpointSlice, endpointPodNames: boolean): IndexedSlice {
  const clusterId = slice.metadata?.labels?.[LABEL_SOURCE_CLUSTER] ?? "";
  const addresses: IndexedAddress[] = [];
  // FQDN slices carry names, not addresses; CoreDNS cannot turn them into A/AAAA either.
  if (slice.addressType !== "FQDN") {
    for (const endpoint of slice.endpoints ?? []) {
      if (endpoint.conditions?.ready === false) continue;
      for (const raw of endpoint.addresses ?? []) {
        const ip = parseIp(raw);
        if (!ip) continue;
        const hostname = endpointHostname(endpoint, raw, endpointPodNames);
        addresses.push({ ip, hostname, hostnameLower: hostname.toLowerCase() });
      }
    }
  }
  return {
    clusterId,
    clusterIdLower: clusterId.toLowerCase(),
    ports: indexSlicePorts(slice),
    addresses,
  };
}

/** CoreDNS's choice: explicit hostname, else (endpoint_pod_names) the Pod's name, else from the IP. */
function endpointHostname(endpoint: V1Endpoint, rawAddress: string, endpointPodNames: boolean): string {
  if (endpoint.hostname) return endpoint.hostname;
  const podName = endpointPodNames ? endpoint.targetRef?.name : undefined;
  return podName || hostnameFromIp(rawAddress);
}

function indexSlicePorts(slice: V1EndpointSlice): readonly IndexedPort[] {
  const ports = slice.ports ?? [];
  if (ports.length === 0) return SENTINEL_PORTS;
  return ports.map((port) => ({
    nameLower: (port.name ?? "").toLowerCase(),
    protocolLower: (port.protocol ?? DEFAULT_PROTOCOL).toLowerCase(),
    port: port.port ?? -1,
  }));
}

function samePorts(a: readonly IndexedPort[], b: readonly IndexedPort[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i];
    const y = b[i];
    if (!x || !y || x.port !== y.port || x.nameLower !== y.nameLower || x.protocolLower !== y.protocolLower) {
      return false;
    }
  }
  return true;
}

function sameImport(a: IndexedImport, b: IndexedImport): boolean {
  return (
    a.name === b.name &&
    a.namespace === b.namespace &&
    a.headless === b.headless &&
    samePorts(a.ports, b.ports) &&
    a.ips.length === b.ips.length &&
    a.ips.every((ip, i) => ip.key === b.ips[i]?.key)
  );
}

function sameSlice(a: IndexedSlice, b: IndexedSlice): boolean {
  return (
    a.clusterId === b.clusterId &&
    samePorts(a.ports, b.ports) &&
    a.addresses.length === b.addresses.length &&
    a.addresses.every(
      (addr, i) => addr.ip.key === b.addresses[i]?.ip.key && addr.hostname === b.addresses[i]?.hostname,
    )
  );
}
