/**
 * Port merging for multi-cluster services (KEP-1645 "Service Port"; mcs-api.md §3.5).
 *
 * The import exposes the union of the constituent Services' ports, merged by name first and then
 * by (protocol, port), the older export winning every duplicate. Besides the merged list, the
 * merge says, per constituent, which of its ports the import serves and under which merged name:
 * imported EndpointSlices carry only those ports, so traffic to a port reaches only the clusters
 * that expose it (conformance "StrictPortConflict").
 */
import type { V1ServicePort } from "@kubernetes/client-node";
import type { ServiceImportPort } from "../api/mcs.js";

/** Transport protocols a Service port may use. */
export type PortProtocol = NonNullable<ServiceImportPort["protocol"]>;

const PROTOCOLS: ReadonlySet<string> = new Set<PortProtocol>(["TCP", "UDP", "SCTP"]);

function isPortProtocol(value: string): value is PortProtocol {
  return PROTOCOLS.has(value);
}

/** Outcome of {@link mergePorts}. */
export interface PortMergeResult {
  /** The merged ports, sorted by name, then protocol, then port. */
  ports: ServiceImportPort[];
  /** True when the constituents' port sets are not all identical (`PortConflict`), supersets included. */
  conflict: boolean;
  /** Per constituent, in input order: whether its port set is identical to the first (winning) one. */
  matchesWinner: boolean[];
  /**
   * Per constituent, in input order: its ports that the import serves, as a map from
   * {@link portRef}(own name, protocol) to the name of the merged port they serve. A port merged
   * into an older port with the same (protocol, port) but another name is served under the older
   * name; a port that lost a name collision to a different port number is absent.
   */
  served: ReadonlyMap<string, string>[];
}

/** Key identifying a port within one Service or EndpointSlice: name (empty if unnamed) and protocol. */
export function portRef(name: string | undefined, protocol: string | undefined): string {
  return `${name ?? ""}/${protocol ?? "TCP"}`;
}

/** A port with the defaults the API server applies (unnamed = "", protocol TCP). */
interface NormalPort {
  name: string;
  protocol: PortProtocol;
  port: number;
  appProtocol: string | undefined;
}

function normalise(port: ServiceImportPort): NormalPort {
  return {
    name: port.name ?? "",
    protocol: port.protocol ?? "TCP",
    port: port.port,
    appProtocol: port.appProtocol,
  };
}

function comparePorts(a: NormalPort, b: NormalPort): number {
  if (a.name !== b.name) return a.name < b.name ? -1 : 1;
  if (a.protocol !== b.protocol) return a.protocol < b.protocol ? -1 : 1;
  return a.port - b.port;
}

/** Canonical text of a port set, insensitive to order: equal sets give equal keys. */
export function portSetKey(ports: readonly ServiceImportPort[]): string {
  return ports
    .map(normalise)
    .sort(comparePorts)
    .map((p) => `${p.name}/${p.protocol}/${p.port}/${p.appProtocol ?? ""}`)
    .join(",");
}

function toImportPort(port: NormalPort): ServiceImportPort {
  const out: ServiceImportPort = { protocol: port.protocol, port: port.port };
  if (port.name !== "") out.name = port.name;
  if (port.appProtocol !== undefined) out.appProtocol = port.appProtocol;
  return out;
}

/**
 * The ports of a Service in ServiceImport form (name, protocol, port, appProtocol; no targetPort
 * or nodePort). Ports with a protocol the API does not know are dropped: the API server never
 * returns them, and an import may not carry them.
 */
export function importPortsOf(ports: readonly V1ServicePort[] | undefined): ServiceImportPort[] {
  const out: ServiceImportPort[] = [];
  for (const port of ports ?? []) {
    const protocol = port.protocol ?? "TCP";
    if (!isPortProtocol(protocol)) continue;
    const importPort: ServiceImportPort = { protocol, port: port.port };
    if (port.name !== undefined && port.name !== "") importPort.name = port.name;
    if (port.appProtocol !== undefined) importPort.appProtocol = port.appProtocol;
    out.push(importPort);
  }
  return out;
}

/**
 * Merges constituent port sets, given **oldest export first** (the precedence order). The
 * result obeys the Service rules: no two ports with the same name (the empty name counts), no two
 * with the same (protocol, port), and no unnamed port next to another port.
 */
export function mergePorts(portSetsOldestFirst: readonly (readonly ServiceImportPort[])[]): PortMergeResult {
  const byName = new Map<string, NormalPort>();
  const nameByProtocolPort = new Map<string, string>();
  const served: Map<string, string>[] = [];

  for (const portSet of portSetsOldestFirst) {
    const servedHere = new Map<string, string>();
    // Sorted so that a malformed set with internal duplicates merges the same whatever its order.
    for (const port of portSet.map(normalise).sort(comparePorts)) {
      const protocolPort = `${port.protocol}/${port.port}`;
      const sameName = byName.get(port.name);
      if (sameName !== undefined) {
        // Name taken: the older port wins; this one is served only if it is the very same port.
        if (sameName.protocol === port.protocol && sameName.port === port.port) {
          servedHere.set(portRef(port.name, port.protocol), port.name);
        }
        continue;
      }
      const olderName = nameByProtocolPort.get(protocolPort);
      if (olderName !== undefined) {
        // Same (protocol, port) under another name: merged into the older port, served under its name.
        servedHere.set(portRef(port.name, port.protocol), olderName);
        continue;
      }
      // A Service with several ports must name them all, so an unnamed port and any other port
      // cannot both be in the result: whichever came first (the older export) wins.
      if (byName.has("") || (port.name === "" && byName.size > 0)) continue;
      byName.set(port.name, port);
      nameByProtocolPort.set(protocolPort, port.name);
      servedHere.set(portRef(port.name, port.protocol), port.name);
    }
    served.push(servedHere);
  }

  const winnerKey = portSetsOldestFirst[0] === undefined ? "" : portSetKey(portSetsOldestFirst[0]);
  const matchesWinner = portSetsOldestFirst.map((portSet) => portSetKey(portSet) === winnerKey);
  return {
    ports: [...byName.values()].sort(comparePorts).map(toImportPort),
    conflict: matchesWinner.includes(false),
    matchesWinner,
    served,
  };
}
