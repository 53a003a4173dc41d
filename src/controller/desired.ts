/**
 * The pure desired-state function of the mcs-controller (KEP-1645; spec: mcs-api.md §2–§3).
 *
 * For one multi-cluster service `namespace/name`, the reconciler snapshots what every available
 * member cluster holds ({@link ObservedService}) and calls {@link desiredState}, which decides:
 * - the status conditions of every ServiceExport (`Valid`, `Ready`, `Conflict`);
 * - per importing cluster, the ServiceImport, the derived Service that gives a ClusterSetIP import
 *   its VIP, and the imported (MCS) EndpointSlices.
 * The shared applier applies that with server-side apply and deletes Meridian-owned objects of
 * the service that are no longer desired. Nothing here does I/O; same input, same output.
 *
 * Decisions are explained where they are made and summarised in `README.md`.
 */
import { ANNOTATION_GATEWAY_LISTEN_PORTS, formatListenPorts } from "../api/meridian.js";
import type {
  V1Condition,
  V1EndpointSlice,
  V1ObjectMeta,
  V1Service,
  V1ServicePort,
  V1ServiceSpec,
  V1SessionAffinityConfig,
} from "@kubernetes/client-node";
import {
  ExportCondition,
  ExportReason,
  LABEL_ENDPOINTSLICE_MANAGED_BY,
  LABEL_SERVICE_NAME,
  LABEL_SOURCE_CLUSTER,
  MCS_API_VERSION,
} from "../api/mcs.js";
import type {
  IPFamily,
  ServiceExport,
  ServiceImport,
  ServiceImportPort,
  ServiceImportSpec,
  ServiceImportType,
} from "../api/mcs.js";
import { toDate, truncateToSeconds, withTransitionTime } from "./conditions.js";
import type { ConditionSpec } from "./conditions.js";
import { POD_ENDPOINT_MODE, collectEndpointGroups, sliceBuilder } from "./endpoints.js";
import type { EndpointMode, SliceBuilder, SourceEndpoints } from "./endpoints.js";
import {
  ANNOTATION_DERIVED_SERVICE,
  ANNOTATION_EXPORT_TO,
  LABEL_KUBERNETES_SERVICE_NAME,
  LABEL_MANAGED_BY,
  LABEL_MERIDIAN_SERVICE_NAME,
  derivedServiceName,
  isDns1035Label,
  isLabelValue,
  isQualifiedName,
  maxEndpointHostnameLength,
  serviceKey,
} from "./names.js";
import { importPortsOf, mergePorts, portSetKey } from "./ports.js";
import type { PortMergeResult } from "./ports.js";

export { conditionsEqual, setCondition, withTransitionTime } from "./conditions.js";
export type { ConditionSpec } from "./conditions.js";
export { POD_ENDPOINT_MODE } from "./endpoints.js";
export type { EndpointMode, GatewayEndpointMode, ImportingGateway, PodEndpointMode } from "./endpoints.js";
export {
  ANNOTATION_DERIVED_SERVICE,
  ANNOTATION_EXPORT_TO,
  LABEL_KUBERNETES_SERVICE_NAME,
  LABEL_MANAGED_BY,
  LABEL_MERIDIAN_SERVICE_NAME,
  derivedServiceName,
  parseServiceKey,
  serviceKey,
} from "./names.js";
export { importPortsOf, mergePorts } from "./ports.js";
export type { PortMergeResult } from "./ports.js";

// ---------------------------------------------------------------------------------------------
// Input and output types
// ---------------------------------------------------------------------------------------------

/** What one available member cluster holds for the service. */
export interface ClusterObservation {
  /** The cluster's ID (ClusterProperty `cluster.clusterset.k8s.io`). Unique within the snapshot. */
  clusterId: string;
  /** Whether the service's namespace exists in this cluster. No namespace, no import. */
  namespaceExists: boolean;
  /** The Service `namespace/name` in this cluster, if any. */
  service?: V1Service;
  /**
   * The ServiceExport `namespace/name` in this cluster, if any, with `metadata.creationTimestamp`
   * (decides the winner), `metadata.annotations` (export-to) and `status.conditions` (their
   * transition times are preserved).
   */
  serviceExport?: ServiceExport;
  /**
   * The Service's EndpointSlices made by Kubernetes (label `kubernetes.io/service-name=<name>`;
   * managed by the EndpointSlice or mirroring controller). Slices carrying the MCS
   * `multicluster.kubernetes.io/service-name` label are ignored.
   */
  endpointSlices?: readonly V1EndpointSlice[];
  /** The derived Service Meridian made here, if any: its `spec.clusterIPs`/`ipFamilies` are the import's VIPs. */
  derivedService?: V1Service;
  /** The ServiceImport Meridian made here, if any: its `status.conditions` transition times are preserved. */
  serviceImport?: ServiceImport;
}

/** A snapshot of one multi-cluster service across every available member cluster. */
export interface ObservedService {
  namespace: string;
  name: string;
  /** Every available member cluster, in any order (the output does not depend on it). */
  clusters: readonly ClusterObservation[];
  /** How imported endpoints reach their backends; {@link POD_ENDPOINT_MODE} when absent. */
  endpointMode?: EndpointMode;
}

/** Controller-wide settings. */
export interface ReconcileOptions {
  /** Namespaces whose ServiceExports are refused. Default: `kube-system`, `kube-public`. */
  refusedNamespaces?: readonly string[];
  /**
   * Value of `endpointslice.kubernetes.io/managed-by` and `app.kubernetes.io/managed-by` on
   * everything Meridian writes. Must be a valid label value (so no `/`). Default
   * {@link DEFAULT_CONTROLLER_NAME}.
   */
  controllerName?: string;
  /** Time for new condition transitions; default the current time. */
  now?: Date;
  /** Most endpoints in one imported EndpointSlice (1–1000). Default 100, as kube-controller-manager. */
  maxEndpointsPerSlice?: number;
}

/** The desired status of one cluster's ServiceExport. */
export interface DesiredExport {
  clusterId: string;
  /** Whether the export is valid, i.e. part of the multi-cluster service. */
  valid: boolean;
  /** `Valid`, `Ready` and `Conflict`, in that order; write to the ServiceExport's `status.conditions`. */
  conditions: V1Condition[];
  /** Clusters whose import carries this export's endpoints, sorted. Empty when invalid. */
  importedInto: string[];
}

/** Everything Meridian should hold for the service in one importing cluster. */
export interface DesiredImport {
  clusterId: string;
  /** The ServiceImport; `status` (clusters, conditions) is to be written through `/status`. */
  serviceImport: ServiceImport;
  /** The derived Service giving a ClusterSetIP import its VIP; absent for Headless imports. */
  derivedService?: V1Service;
  /** Imported EndpointSlices, one source cluster each. May be shared with other imports: read-only. */
  endpointSlices: readonly V1EndpointSlice[];
}

/** The desired state of one multi-cluster service. Clusters not in `imports` hold nothing for it. */
export interface DesiredService {
  /** `namespace/name`. */
  key: string;
  namespace: string;
  name: string;
  /** Cluster ID of the export whose values the service uses (oldest valid); absent when none is valid. */
  winner?: string;
  /** One entry per cluster that has a ServiceExport, sorted by cluster ID. */
  exports: DesiredExport[];
  /** One entry per importing cluster, sorted by cluster ID. Empty when no valid export remains. */
  imports: DesiredImport[];
}

/** Default {@link ReconcileOptions.controllerName}. */
export const DEFAULT_CONTROLLER_NAME = "mcs-controller.meridian.dev";
/** Default {@link ReconcileOptions.refusedNamespaces}. */
export const DEFAULT_REFUSED_NAMESPACES: readonly string[] = ["kube-system", "kube-public"];

/** ServiceExport reasons Meridian adds to the v1beta1 ones (`Valid=False`). */
export const MeridianExportReason = {
  /** The namespace is in the controller's refused namespaces. */
  NamespaceRefused: "NamespaceRefused",
  /** The name cannot be a DNS label of `<svc>.<ns>.svc.clusterset.local`. */
  InvalidServiceName: "InvalidServiceName",
  /** The exporting cluster's ID cannot be a label value (`source-cluster`). */
  InvalidClusterID: "InvalidClusterID",
  /** `exportedLabels`/`exportedAnnotations` are not valid Kubernetes metadata. */
  InvalidExportedMetadata: "InvalidExportedMetadata",
} as const;

/** ServiceImport condition type and reasons (mcs-api.md §2.3). */
export const ImportCondition = { Ready: "Ready" } as const;
export const ImportReason = {
  Ready: "Ready",
  Pending: "Pending",
  IPFamilyNotSupported: "IPFamilyNotSupported",
} as const;

// ---------------------------------------------------------------------------------------------
// Small exported helpers
// ---------------------------------------------------------------------------------------------

/**
 * Labels on every object Meridian writes for service `name` (within its namespace): the
 * applier's selector for "ours, for this key" is exactly these.
 */
export function ownedObjectLabels(name: string, controllerName: string): Record<string, string> {
  return { [LABEL_MANAGED_BY]: controllerName, [LABEL_MERIDIAN_SERVICE_NAME]: name };
}

/**
 * The clusters a ServiceExport restricts its import to (annotation {@link ANNOTATION_EXPORT_TO},
 * comma-separated cluster IDs, blanks ignored); undefined when unrestricted.
 */
export function exportTargets(serviceExport: ServiceExport): ReadonlySet<string> | undefined {
  const value = serviceExport.metadata.annotations?.[ANNOTATION_EXPORT_TO];
  if (value === undefined) return undefined;
  return new Set(
    value
      .split(",")
      .map((id) => id.trim())
      .filter((id) => id !== ""),
  );
}

/** Checks options and fills defaults. Throws a TypeError for a configuration that can never work. */
function resolveOptions(options: ReconcileOptions): ResolvedOptions {
  const controllerName = options.controllerName ?? DEFAULT_CONTROLLER_NAME;
  if (
    controllerName === "" ||
    !isLabelValue(controllerName) ||
    controllerName === "endpointslice-controller.k8s.io"
  ) {
    throw new TypeError(
      `controllerName "${controllerName}" must be a non-empty label value (≤ 63 characters, no "/") other than the EndpointSlice controller's`,
    );
  }
  const maxEndpointsPerSlice = options.maxEndpointsPerSlice ?? 100;
  if (!Number.isInteger(maxEndpointsPerSlice) || maxEndpointsPerSlice < 1 || maxEndpointsPerSlice > 1000) {
    throw new TypeError(
      `maxEndpointsPerSlice must be an integer from 1 to 1000, got ${maxEndpointsPerSlice}`,
    );
  }
  const refused = options.refusedNamespaces ?? DEFAULT_REFUSED_NAMESPACES;
  return {
    controllerName,
    maxEndpointsPerSlice,
    refusedNamespaces: new Set(refused),
    refusedList: refused.join(", "),
    now: truncateToSeconds(options.now ?? new Date()),
  };
}

// ---------------------------------------------------------------------------------------------
// Internal model
// ---------------------------------------------------------------------------------------------

interface ResolvedOptions {
  controllerName: string;
  maxEndpointsPerSlice: number;
  refusedNamespaces: ReadonlySet<string>;
  refusedList: string;
  now: Date;
}

/** The global properties one valid export proposes for the import. */
interface ExportedProperties {
  type: ServiceImportType;
  ports: ServiceImportPort[];
  sessionAffinity: string | undefined;
  sessionAffinityConfig: V1SessionAffinityConfig | undefined;
  internalTrafficPolicy: string | undefined;
  trafficDistribution: string | undefined;
  ipFamilies: IPFamily[];
  ipFamilyPolicy: string | undefined;
  exportedLabels: Record<string, string>;
  exportedAnnotations: Record<string, string>;
}

/** A valid export: part of the multi-cluster service. */
interface Constituent {
  cluster: ClusterObservation;
  clusterId: string;
  serviceExport: ServiceExport;
  /** creationTimestamp in ms; +∞ when missing (an export without one never wins over one with). */
  createdAt: number;
  /** export-to restriction; undefined = every cluster. */
  targets: ReadonlySet<string> | undefined;
  properties: ExportedProperties;
  /** Advice about per-endpoint DNS names, appended to the Valid message. */
  validNote: string;
}

type ExportVerdict =
  | { valid: true; constituent: Constituent }
  | { valid: false; clusterId: string; serviceExport: ServiceExport; reason: string; message: string };

/** A contested global property. */
interface Conflict {
  property: GlobalProperty;
  /** Constituents whose value differs from the winner's. */
  disagreeing: ReadonlySet<string>;
}

// ---------------------------------------------------------------------------------------------
// Export validation
// ---------------------------------------------------------------------------------------------

function isBeingDeleted(meta: V1ObjectMeta | undefined): boolean {
  return meta?.deletionTimestamp !== undefined && meta.deletionTimestamp !== null;
}

function isIPFamily(value: string): value is IPFamily {
  return value === "IPv4" || value === "IPv6";
}

function familyOfAddress(address: string): IPFamily {
  return address.includes(":") ? "IPv6" : "IPv4";
}

function uniqueFamilies(families: Iterable<string>): IPFamily[] {
  const out: IPFamily[] = [];
  for (const family of families) {
    if (isIPFamily(family) && !out.includes(family)) out.push(family);
  }
  return out;
}

/**
 * The Service's IP families: `spec.ipFamilies` (the API server always fills it), else the
 * families of its cluster IPs, else of its EndpointSlices, else IPv4. Conformance requires
 * `ipFamilies` on every import, so an answer is always given.
 */
function ipFamiliesOf(service: V1Service, slices: readonly V1EndpointSlice[]): IPFamily[] {
  const spec = service.spec;
  const declared = uniqueFamilies(spec?.ipFamilies ?? []);
  if (declared.length > 0) return declared;
  const clusterIPs = (spec?.clusterIPs ?? (spec?.clusterIP === undefined ? [] : [spec.clusterIP])).filter(
    (ip) => ip !== "" && ip !== "None",
  );
  const fromClusterIPs = uniqueFamilies(clusterIPs.map(familyOfAddress));
  if (fromClusterIPs.length > 0) return fromClusterIPs;
  const fromSlices = uniqueFamilies(slices.map((slice) => slice.addressType)).sort();
  return fromSlices.length > 0 ? fromSlices : ["IPv4"];
}

function copySessionAffinityConfig(
  config: V1SessionAffinityConfig | undefined,
): V1SessionAffinityConfig | undefined {
  if (config === undefined) return undefined;
  if (config.clientIP === undefined) return {};
  const clientIP: NonNullable<V1SessionAffinityConfig["clientIP"]> = {};
  if (config.clientIP.timeoutSeconds !== undefined) clientIP.timeoutSeconds = config.clientIP.timeoutSeconds;
  return { clientIP };
}

function exportedPropertiesOf(
  service: V1Service,
  serviceExport: ServiceExport,
  slices: readonly V1EndpointSlice[],
): ExportedProperties {
  const spec = service.spec ?? {};
  return {
    // NodePort and LoadBalancer Services export like ClusterIP: only `clusterIP: None` is headless.
    type: spec.clusterIP === "None" ? "Headless" : "ClusterSetIP",
    ports: importPortsOf(spec.ports),
    sessionAffinity: spec.sessionAffinity,
    sessionAffinityConfig: copySessionAffinityConfig(spec.sessionAffinityConfig),
    internalTrafficPolicy: spec.internalTrafficPolicy,
    trafficDistribution: spec.trafficDistribution,
    ipFamilies: ipFamiliesOf(service, slices),
    ipFamilyPolicy: spec.ipFamilyPolicy,
    exportedLabels: { ...serviceExport.spec?.exportedLabels },
    exportedAnnotations: { ...serviceExport.spec?.exportedAnnotations },
  };
}

function invalidExportedMetadata(serviceExport: ServiceExport): string | undefined {
  const badLabels = Object.entries(serviceExport.spec?.exportedLabels ?? {})
    .filter(([key, value]) => !isQualifiedName(key) || !isLabelValue(value))
    .map(([key]) => key);
  const badAnnotations = Object.keys(serviceExport.spec?.exportedAnnotations ?? {}).filter(
    (key) => !isQualifiedName(key),
  );
  if (badLabels.length === 0 && badAnnotations.length === 0) return undefined;
  const problems: string[] = [];
  if (badLabels.length > 0)
    problems.push(`spec.exportedLabels has invalid entries: ${quotedList(badLabels)}`);
  if (badAnnotations.length > 0)
    problems.push(`spec.exportedAnnotations has invalid keys: ${quotedList(badAnnotations)}`);
  return (
    `${problems.join("; ")}. Keys must be [prefix/]name (name ≤ 63 alphanumerics, "-", "_", "." ` +
    `starting and ending alphanumeric) and label values ≤ 63 such characters; they would be ` +
    `rejected on the ServiceImport.`
  );
}

/**
 * Per-endpoint DNS names `<hostname>.<clusterid>.<svc>.<ns>.svc.clusterset.local` are defined for
 * headless services. When long names leave less than a full label for the hostname, or the cluster
 * ID has a dot (resolvers expect exactly two labels before the service), the export still works for
 * the service name; the Valid message says what will not resolve.
 *
 * A combination that can never resolve cannot reach this point: the service name, namespace and
 * cluster ID are each ≤ 63 characters once validated, which leaves ≥ 40 characters for the
 * hostname, more than the longest IP-derived hostname (39, for IPv6).
 */
function perEndpointDnsNote(
  namespace: string,
  name: string,
  clusterId: string,
  type: ServiceImportType,
): string {
  if (type !== "Headless") return "";
  const notes: string[] = [];
  const longest = maxEndpointHostnameLength(namespace, name, clusterId);
  if (longest < 63) {
    notes.push(
      `Per-endpoint DNS names <hostname>.${clusterId}.${name}.${namespace}.svc.clusterset.local ` +
        `exceed 253 characters for endpoint hostnames longer than ${longest} characters; those ` +
        `endpoints resolve only through the service name.`,
    );
  }
  if (clusterId.includes(".")) {
    notes.push(
      `Cluster ID "${clusterId}" contains a dot, so per-endpoint DNS names of this cluster cannot be ` +
        `queried (exactly <hostname>.<clusterid> is expected before the service name).`,
    );
  }
  return notes.join(" ");
}

function invalid(
  cluster: ClusterObservation,
  serviceExport: ServiceExport,
  reason: string,
  message: string,
): ExportVerdict {
  return { valid: false, clusterId: cluster.clusterId, serviceExport, reason, message };
}

/** Decides whether a cluster's ServiceExport is valid, checking the cheapest and broadest causes first. */
function evaluateExport(
  observed: ObservedService,
  cluster: ClusterObservation,
  serviceExport: ServiceExport,
  options: ResolvedOptions,
): ExportVerdict {
  const { namespace, name } = observed;
  const { clusterId, service } = cluster;
  if (options.refusedNamespaces.has(namespace)) {
    return invalid(
      cluster,
      serviceExport,
      MeridianExportReason.NamespaceRefused,
      `Exports from namespace "${namespace}" are refused by the ClusterSet's configuration (refused ` +
        `namespaces: ${options.refusedList}). Delete this ServiceExport, or ask the ClusterSet ` +
        `administrator to remove "${namespace}" from the mcs-controller's refused namespaces.`,
    );
  }
  if (!isDns1035Label(name)) {
    return invalid(
      cluster,
      serviceExport,
      MeridianExportReason.InvalidServiceName,
      `"${name}" cannot be exported: a multi-cluster service name must be a DNS label (lower-case ` +
        `letters, digits and "-", starting with a letter, at most 63 characters) to be used in ` +
        `<service>.<namespace>.svc.clusterset.local.`,
    );
  }
  if (!isLabelValue(clusterId) || clusterId === "") {
    return invalid(
      cluster,
      serviceExport,
      MeridianExportReason.InvalidClusterID,
      `Cluster ID "${clusterId}" is not a valid label value (at most 63 alphanumerics, "-", "_" or ` +
        `"."), so it cannot be written to the ${LABEL_SOURCE_CLUSTER} label. Give this cluster a ` +
        `shorter ID (ClusterProperty cluster.clusterset.k8s.io).`,
    );
  }
  if (service === undefined || isBeingDeleted(service.metadata)) {
    return invalid(
      cluster,
      serviceExport,
      ExportReason.NoService,
      `No Service "${name}" exists in namespace "${namespace}" of cluster "${clusterId}". Create ` +
        `the Service, or delete this ServiceExport.`,
    );
  }
  if (service.spec?.type === "ExternalName") {
    return invalid(
      cluster,
      serviceExport,
      ExportReason.InvalidServiceType,
      `Service "${name}" is of type ExternalName, which cannot be exported (it has neither a ` +
        `cluster IP nor endpoints). Export a ClusterIP, NodePort, LoadBalancer or headless Service.`,
    );
  }
  const metadataProblem = invalidExportedMetadata(serviceExport);
  if (metadataProblem !== undefined) {
    return invalid(cluster, serviceExport, MeridianExportReason.InvalidExportedMetadata, metadataProblem);
  }
  const slices = cluster.endpointSlices ?? [];
  const properties = exportedPropertiesOf(service, serviceExport, slices);
  return {
    valid: true,
    constituent: {
      cluster,
      clusterId,
      serviceExport,
      createdAt: toDate(serviceExport.metadata.creationTimestamp)?.getTime() ?? Number.POSITIVE_INFINITY,
      targets: exportTargets(serviceExport),
      properties,
      validNote: perEndpointDnsNote(namespace, name, clusterId, properties.type),
    },
  };
}

/** Oldest export first; equal creation times (second granularity) broken by cluster ID. */
function byPrecedence(a: Constituent, b: Constituent): number {
  if (a.createdAt !== b.createdAt) return a.createdAt < b.createdAt ? -1 : 1;
  return compareText(a.clusterId, b.clusterId);
}

// ---------------------------------------------------------------------------------------------
// Conflicts (mcs-api.md §3.4)
// ---------------------------------------------------------------------------------------------

/** A global property: compared across constituents; the winner's value is used. */
interface GlobalProperty {
  reason: ExportReason;
  /** The property as users know it, for messages. */
  field: string;
  /** Canonical comparison key, with API defaults applied so an omitted default equals the default. */
  key(properties: ExportedProperties): string;
  /** How the winner's value is used, completing "Conflicting <field>: … the oldest ServiceExport". */
  resolution(winner: ExportedProperties): string;
}

function mapKey(map: Readonly<Record<string, string>>): string {
  return JSON.stringify(Object.entries(map).sort(([a], [b]) => compareText(a, b)));
}

function quoted(value: string | undefined, unset: string): string {
  return value === undefined ? unset : `"${value}"`;
}

/** In the order of the v1beta1 reason list, which is also the order of joined reasons. */
const GLOBAL_PROPERTIES: readonly GlobalProperty[] = [
  {
    reason: ExportReason.PortConflict,
    field: "ports",
    key: (p) => portSetKey(p.ports),
    resolution: () => "exposing the union of all exported ports, duplicates resolved in favour of",
  },
  {
    reason: ExportReason.TypeConflict,
    field: "type",
    key: (p) => p.type,
    resolution: (w) => `using "${w.type}" from`,
  },
  {
    reason: ExportReason.SessionAffinityConflict,
    field: "sessionAffinity",
    key: (p) => p.sessionAffinity ?? "None",
    resolution: (w) => `using "${w.sessionAffinity ?? "None"}" from`,
  },
  {
    reason: ExportReason.SessionAffinityConfigConflict,
    field: "sessionAffinityConfig",
    key: (p) => String(p.sessionAffinityConfig?.clientIP?.timeoutSeconds ?? ""),
    resolution: (w) =>
      w.sessionAffinityConfig?.clientIP?.timeoutSeconds === undefined
        ? "using no session affinity timeout, from"
        : `using clientIP.timeoutSeconds=${w.sessionAffinityConfig.clientIP.timeoutSeconds} from`,
  },
  {
    reason: ExportReason.LabelsConflict,
    field: "exportedLabels",
    key: (p) => mapKey(p.exportedLabels),
    resolution: () => "using the exported labels of",
  },
  {
    reason: ExportReason.AnnotationsConflict,
    field: "exportedAnnotations",
    key: (p) => mapKey(p.exportedAnnotations),
    resolution: () => "using the exported annotations of",
  },
  {
    reason: ExportReason.InternalTrafficPolicyConflict,
    field: "internalTrafficPolicy",
    key: (p) => p.internalTrafficPolicy ?? "Cluster",
    resolution: (w) => `using "${w.internalTrafficPolicy ?? "Cluster"}" from`,
  },
  {
    reason: ExportReason.TrafficDistributionConflict,
    field: "trafficDistribution",
    key: (p) => p.trafficDistribution ?? "",
    resolution: (w) => `using ${quoted(w.trafficDistribution, "no traffic distribution")} from`,
  },
  {
    // Compared as sets: only a difference in families can strand traffic on a subset of backends
    // (mcs-api.md §3.4); the primary family alone does not.
    reason: ExportReason.IPFamilyConflict,
    field: "ipFamilies",
    key: (p) => [...p.ipFamilies].sort().join(","),
    resolution: (w) => `using "${w.ipFamilies.join(",")}" from`,
  },
];

/** Compares every constituent with the winner (the first, by precedence), property by property. */
function detectConflicts(constituents: readonly Constituent[]): Conflict[] {
  const [winner] = constituents;
  if (winner === undefined) return [];
  const conflicts: Conflict[] = [];
  for (const property of GLOBAL_PROPERTIES) {
    const winnerKey = property.key(winner.properties);
    const disagreeing = new Set<string>();
    for (const c of constituents) {
      if (property.key(c.properties) !== winnerKey) disagreeing.add(c.clusterId);
    }
    if (disagreeing.size > 0) conflicts.push({ property, disagreeing });
  }
  return conflicts;
}

/**
 * The Conflict condition, the same on every export of the service (the KEP and conformance want
 * it on all, not only the losers), plus one sentence about the export itself.
 */
function conflictCondition(
  constituent: Constituent,
  constituents: readonly Constituent[],
  conflicts: readonly Conflict[],
): ConditionSpec {
  const generation = constituent.serviceExport.metadata.generation;
  const [winner] = constituents;
  if (conflicts.length === 0 || winner === undefined) {
    return condition(ExportCondition.Conflict, "False", ExportReason.NoConflicts, "", generation);
  }
  const total = constituents.length;
  const sentences = conflicts.map(
    ({ property, disagreeing }) =>
      `Conflicting ${property.field}: ${property.resolution(winner.properties)} the oldest ServiceExport, ` +
      `in cluster "${winner.clusterId}"; ${disagreeing.size}/${total} clusters disagree.`,
  );
  if (constituents.some((c) => c !== winner && c.createdAt === winner.createdAt)) {
    sentences.push("Exports created in the same second are ordered by cluster ID.");
  }
  const ownDifferences = conflicts
    .filter(({ disagreeing }) => disagreeing.has(constituent.clusterId))
    .map(({ property }) => property.field);
  if (constituent === winner) sentences.push("This export is the oldest: its values are used.");
  else if (ownDifferences.length > 0) sentences.push(`This export differs in: ${ownDifferences.join(", ")}.`);
  else sentences.push("This export agrees with the oldest one.");
  return condition(
    ExportCondition.Conflict,
    "True",
    conflicts.map(({ property }) => property.reason).join(","),
    sentences.join(" "),
    generation,
  );
}

// ---------------------------------------------------------------------------------------------
// Export status
// ---------------------------------------------------------------------------------------------

function condition(
  type: string,
  status: ConditionSpec["status"],
  reason: string,
  message: string,
  observedGeneration: number | undefined,
): ConditionSpec {
  const spec: ConditionSpec = { type, status, reason, message };
  if (observedGeneration !== undefined) spec.observedGeneration = observedGeneration;
  return spec;
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** At most 10 names, then a count, so messages stay short in large ClusterSets. */
function formatList(items: readonly string[]): string {
  const shown = items.slice(0, 10).join(", ");
  return items.length > 10 ? `${shown} and ${items.length - 10} more` : shown;
}

function quotedList(items: readonly string[]): string {
  return formatList(items.map((item) => `"${item}"`));
}

function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? "" : "s"}`;
}

/** Why the export is not imported in some clusters: unavailable targets, missing namespaces. */
function coverageNotes(
  observed: ObservedService,
  constituent: Constituent,
  importedInto: readonly string[],
): string {
  const imported = new Set(importedInto);
  const known = new Set(observed.clusters.map((c) => c.clusterId));
  const notes: string[] = [];
  if (constituent.targets !== undefined) {
    const unavailable = [...constituent.targets].filter((id) => !known.has(id)).sort(compareText);
    if (unavailable.length > 0)
      notes.push(`Export-to clusters not currently available: ${formatList(unavailable)}.`);
  }
  const withoutNamespace = observed.clusters
    .filter(
      (c) =>
        !c.namespaceExists && (constituent.targets?.has(c.clusterId) ?? true) && !imported.has(c.clusterId),
    )
    .map((c) => c.clusterId)
    .sort(compareText);
  if (withoutNamespace.length > 0) {
    notes.push(
      `Not imported where namespace "${observed.namespace}" does not exist: ${formatList(withoutNamespace)}.`,
    );
  }
  return notes.join(" ");
}

function validExportConditions(
  observed: ObservedService,
  constituent: Constituent,
  constituents: readonly Constituent[],
  conflicts: readonly Conflict[],
  importedInto: readonly string[],
): ConditionSpec[] {
  const generation = constituent.serviceExport.metadata.generation;
  const notes = coverageNotes(observed, constituent, importedInto);
  const ready =
    importedInto.length > 0
      ? condition(
          ExportCondition.Ready,
          "True",
          ExportReason.Exported,
          `Imported into ${plural(importedInto.length, "cluster")}: ${formatList(importedInto)}.${notes === "" ? "" : ` ${notes}`}`,
          generation,
        )
      : condition(
          ExportCondition.Ready,
          "False",
          ExportReason.Pending,
          `Not imported into any cluster.${notes === "" ? "" : ` ${notes}`}`,
          generation,
        );
  return [
    condition(ExportCondition.Valid, "True", ExportReason.Valid, constituent.validNote, generation),
    ready,
    conflictCondition(constituent, constituents, conflicts),
  ];
}

function invalidExportConditions(verdict: Extract<ExportVerdict, { valid: false }>): ConditionSpec[] {
  const generation = verdict.serviceExport.metadata.generation;
  // A missing Service is usually transient (export created first), so the export waits for it.
  const readyReason = verdict.reason === ExportReason.NoService ? ExportReason.Pending : ExportReason.Failed;
  return [
    condition(ExportCondition.Valid, "False", verdict.reason, verdict.message, generation),
    condition(
      ExportCondition.Ready,
      "False",
      readyReason,
      "Not exported: the export is not valid (see the Valid condition).",
      generation,
    ),
    condition(
      ExportCondition.Conflict,
      "False",
      ExportReason.NoConflicts,
      "Not evaluated: the export is not valid.",
      generation,
    ),
  ];
}

// ---------------------------------------------------------------------------------------------
// Imports
// ---------------------------------------------------------------------------------------------

/** What one reconcile computes once and every importing cluster shares. */
interface ImportPlan {
  observed: ObservedService;
  options: ResolvedOptions;
  winner: Constituent;
  ports: PortMergeResult;
  derivedName: string;
  /** The derived Service, the same in every importing cluster; absent for Headless imports. */
  derivedService: V1Service | undefined;
  buildSlices: SliceBuilder;
  sourceEndpoints: (constituent: Constituent) => SourceEndpoints;
}

/** VIPs allocated to the derived Service, by family. */
function allocatedAddresses(derived: V1Service | undefined): Map<IPFamily, string> {
  const allocated = new Map<IPFamily, string>();
  const spec = derived?.spec;
  const clusterIPs = spec?.clusterIPs ?? (spec?.clusterIP === undefined ? [] : [spec.clusterIP]);
  clusterIPs.forEach((ip, index) => {
    if (ip === "" || ip === "None") return;
    const declared = spec?.ipFamilies?.[index];
    const family = declared !== undefined && isIPFamily(declared) ? declared : familyOfAddress(ip);
    if (!allocated.has(family)) allocated.set(family, ip);
  });
  return allocated;
}

/**
 * The import's `ipFamilies` and `ips` in one cluster, index-aligned (a required conformance
 * check), with the import's Ready condition. The VIPs are the derived Service's cluster IPs, so a
 * family the importing cluster could not allocate is left out of `ipFamilies` rather than listed
 * without an IP.
 */
function importAddressing(
  type: ServiceImportType,
  winnerFamilies: readonly IPFamily[],
  derivedName: string,
  derived: V1Service | undefined,
): { ipFamilies: IPFamily[]; ips?: string[]; ready: ConditionSpec } {
  const families = [...winnerFamilies];
  if (type === "Headless") {
    return {
      ipFamilies: families,
      ready: condition(ImportCondition.Ready, "True", ImportReason.Ready, "", undefined),
    };
  }
  const allocated = allocatedAddresses(derived);
  if (allocated.size === 0) {
    const message = `Waiting for the derived Service "${derivedName}" to be allocated a cluster IP.`;
    return {
      ipFamilies: families,
      ready: condition(ImportCondition.Ready, "False", ImportReason.Pending, message, undefined),
    };
  }
  const served = families.filter((family) => allocated.has(family));
  if (served.length === 0) {
    const message =
      `The service uses ${families.join(",")} but this cluster allocated only ` +
      `${[...allocated.keys()].join(",")} to the derived Service "${derivedName}".`;
    return {
      ipFamilies: families,
      ready: condition(ImportCondition.Ready, "False", ImportReason.IPFamilyNotSupported, message, undefined),
    };
  }
  const missing = families.filter((family) => !allocated.has(family));
  const message =
    missing.length === 0
      ? ""
      : `${missing.join(",")} is not available in this cluster; imported over ${served.join(",")} only.`;
  return {
    ipFamilies: served,
    ips: served.map((family) => allocated.get(family) ?? ""),
    ready: condition(ImportCondition.Ready, "True", ImportReason.Ready, message, undefined),
  };
}

function importSpec(
  plan: ImportPlan,
  addressing: { ipFamilies: IPFamily[]; ips?: string[] },
): ServiceImportSpec {
  const winner = plan.winner.properties;
  const spec: ServiceImportSpec = { ports: plan.ports.ports, type: winner.type };
  if (addressing.ips !== undefined) spec.ips = addressing.ips;
  spec.ipFamilies = addressing.ipFamilies;
  if (winner.sessionAffinity !== undefined) spec.sessionAffinity = winner.sessionAffinity;
  const affinityConfig = copySessionAffinityConfig(winner.sessionAffinityConfig);
  if (affinityConfig !== undefined) spec.sessionAffinityConfig = affinityConfig;
  if (winner.internalTrafficPolicy !== undefined) spec.internalTrafficPolicy = winner.internalTrafficPolicy;
  if (winner.trafficDistribution !== undefined) spec.trafficDistribution = winner.trafficDistribution;
  return spec;
}

function toServicePort(port: ServiceImportPort): V1ServicePort {
  const out: V1ServicePort = { protocol: port.protocol ?? "TCP", port: port.port };
  if (port.name !== undefined) out.name = port.name;
  if (port.appProtocol !== undefined) out.appProtocol = port.appProtocol;
  return out;
}

/**
 * The selector-less ClusterIP Service whose cluster IP is the import's VIP in one cluster;
 * kube-proxy programs it from the imported slices labelled with its name.
 *
 * - ipFamilies from the winner; `RequireDualStack` is relaxed to `PreferDualStack` so a
 *   single-stack importing cluster still gets a VIP (the import then lists the families it got).
 * - sessionAffinity(+Config) from the winner: kube-proxy implements affinity per Service.
 * - internalTrafficPolicy is NOT copied: imported endpoints carry no nodeName, so `Local` would
 *   drop every endpoint. trafficDistribution is not copied either: it acts through topology hints,
 *   which imported endpoints do not carry. Both stay on the ServiceImport.
 */
function derivedService(
  observed: ObservedService,
  options: ResolvedOptions,
  winner: ExportedProperties,
  ports: PortMergeResult,
  derivedName: string,
): V1Service {
  const { namespace, name } = observed;
  const declaredPolicy = winner.ipFamilyPolicy;
  const ipFamilyPolicy =
    declaredPolicy === "RequireDualStack"
      ? "PreferDualStack"
      : (declaredPolicy ?? (winner.ipFamilies.length > 1 ? "PreferDualStack" : "SingleStack"));
  const spec: V1ServiceSpec = {
    type: "ClusterIP",
    ports: ports.ports.map(toServicePort),
    ipFamilies: [...winner.ipFamilies],
    ipFamilyPolicy,
  };
  if (winner.sessionAffinity !== undefined) spec.sessionAffinity = winner.sessionAffinity;
  const affinityConfig = copySessionAffinityConfig(winner.sessionAffinityConfig);
  if (affinityConfig !== undefined) spec.sessionAffinityConfig = affinityConfig;
  return {
    apiVersion: "v1",
    kind: "Service",
    metadata: { name: derivedName, namespace, labels: ownedObjectLabels(name, options.controllerName) },
    spec,
  };
}

function desiredImport(
  plan: ImportPlan,
  cluster: ClusterObservation,
  contributors: readonly Constituent[],
): DesiredImport {
  const { namespace, name } = plan.observed;
  const winner = plan.winner.properties;
  const addressing = importAddressing(
    winner.type,
    winner.ipFamilies,
    plan.derivedName,
    cluster.derivedService,
  );
  const annotations: Record<string, string> = { ...winner.exportedAnnotations };
  if (winner.type === "ClusterSetIP") annotations[ANNOTATION_DERIVED_SERVICE] = plan.derivedName;
  const mode = plan.observed.endpointMode;
  const gateway = mode?.kind === "gateway" ? mode.gateways.get(cluster.clusterId) : undefined;
  if (gateway && winner.type === "ClusterSetIP")
    annotations[ANNOTATION_GATEWAY_LISTEN_PORTS] = formatListenPorts(gateway.listenPorts);
  const readyCondition = withTransitionTime(
    cluster.serviceImport?.status?.conditions,
    addressing.ready,
    plan.options.now,
  );
  const serviceImport: ServiceImport = {
    apiVersion: MCS_API_VERSION,
    kind: "ServiceImport",
    metadata: {
      name,
      namespace,
      // Meridian's own labels are written last: an exported label cannot take ownership away.
      labels: { ...winner.exportedLabels, ...ownedObjectLabels(name, plan.options.controllerName) },
      annotations,
    },
    spec: importSpec(plan, addressing),
    status: { clusters: contributors.map((c) => ({ cluster: c.clusterId })), conditions: [readyCondition] },
  };
  const endpointSlices = contributors.flatMap((c) =>
    plan.buildSlices(cluster.clusterId, plan.sourceEndpoints(c)),
  );
  const result: DesiredImport = { clusterId: cluster.clusterId, serviceImport, endpointSlices };
  if (plan.derivedService !== undefined) result.derivedService = plan.derivedService;
  return result;
}

function makePlan(
  observed: ObservedService,
  options: ResolvedOptions,
  constituents: readonly Constituent[],
  winner: Constituent,
  ports: PortMergeResult,
): ImportPlan {
  const { namespace, name } = observed;
  const derivedName = derivedServiceName(namespace, name);
  const commonLabels: Record<string, string> = {
    [LABEL_SERVICE_NAME]: name,
    [LABEL_ENDPOINTSLICE_MANAGED_BY]: options.controllerName,
    ...ownedObjectLabels(name, options.controllerName),
  };
  // kube-proxy attaches slices to a Service by this label; only ClusterSetIP imports have one.
  // It must never name the exported Service itself, whose cluster.local behaviour must not change.
  if (winner.properties.type === "ClusterSetIP") commonLabels[LABEL_KUBERNETES_SERVICE_NAME] = derivedName;
  const servedByCluster = new Map(
    constituents.map((c, i) => [c.clusterId, ports.served[i] ?? new Map<string, string>()]),
  );
  const endpointsByCluster = new Map<string, SourceEndpoints>();
  return {
    observed,
    options,
    winner,
    ports,
    derivedName,
    derivedService:
      winner.properties.type === "ClusterSetIP"
        ? derivedService(observed, options, winner.properties, ports, derivedName)
        : undefined,
    buildSlices: sliceBuilder(observed.endpointMode ?? POD_ENDPOINT_MODE, {
      namespace,
      serviceName: name,
      commonLabels,
      sourceClusterLabel: LABEL_SOURCE_CLUSTER,
      maxEndpointsPerSlice: options.maxEndpointsPerSlice,
    }),
    sourceEndpoints: (constituent) => {
      let source = endpointsByCluster.get(constituent.clusterId);
      if (source === undefined) {
        const served = servedByCluster.get(constituent.clusterId) ?? new Map<string, string>();
        source = {
          clusterId: constituent.clusterId,
          groups: collectEndpointGroups(constituent.cluster.endpointSlices ?? [], served),
        };
        endpointsByCluster.set(constituent.clusterId, source);
      }
      return source;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// The desired-state function
// ---------------------------------------------------------------------------------------------

function sortedClusters(observed: ObservedService): ClusterObservation[] {
  const clusters = [...observed.clusters].sort((a, b) => compareText(a.clusterId, b.clusterId));
  for (let i = 1; i < clusters.length; i++) {
    if (clusters[i]?.clusterId === clusters[i - 1]?.clusterId) {
      throw new TypeError(
        `cluster "${clusters[i]?.clusterId}" appears twice in the snapshot of ${serviceKey(observed.namespace, observed.name)}`,
      );
    }
  }
  return clusters;
}

/**
 * Computes the desired state of one multi-cluster service from a snapshot of every available
 * member cluster. Pure: no I/O, no mutation of the input; the output depends only on the input
 * (cluster order included: it does not matter) and `options.now` (used only for new condition
 * transitions). The output may share objects between importing clusters; treat it as read-only.
 *
 * - An export is valid unless its namespace is refused, the name cannot be a DNS label, the
 *   cluster ID cannot be a label value, the Service is missing or ExternalName, or its exported
 *   labels/annotations are malformed. ServiceExports and Services being deleted count as absent.
 * - The oldest valid export (ties: lowest cluster ID) defines every global property; ports are
 *   merged; each contested property is reported on every valid export's Conflict condition.
 * - A cluster imports when its namespace exists and some valid export targets it (export-to).
 *   Each import carries the endpoints of the valid exports that target that cluster, including
 *   exports that lost a conflict (see README: conflicts choose values, they do not eject exports).
 * - No valid export → no imports anywhere, which the applier turns into deletions.
 */
export function desiredState(observed: ObservedService, options: ReconcileOptions = {}): DesiredService {
  const resolved = resolveOptions(options);
  const { namespace, name } = observed;
  const clusters = sortedClusters(observed);

  const verdicts: ExportVerdict[] = [];
  for (const cluster of clusters) {
    const serviceExport = cluster.serviceExport;
    if (serviceExport === undefined || isBeingDeleted(serviceExport.metadata)) continue;
    verdicts.push(evaluateExport(observed, cluster, serviceExport, resolved));
  }
  const constituents = verdicts
    .flatMap((verdict) => (verdict.valid ? [verdict.constituent] : []))
    .sort(byPrecedence);
  const [winner] = constituents;

  const imports: DesiredImport[] = [];
  const importedInto = new Map<string, string[]>(constituents.map((c) => [c.clusterId, []]));
  let conflicts: Conflict[] = [];
  if (winner !== undefined) {
    const ports = mergePorts(constituents.map((c) => c.properties.ports));
    conflicts = detectConflicts(constituents);
    const plan = makePlan(observed, resolved, constituents, winner, ports);
    for (const cluster of clusters) {
      if (!cluster.namespaceExists) continue;
      const contributors = constituents
        .filter((c) => c.targets?.has(cluster.clusterId) ?? true)
        .sort((a, b) => compareText(a.clusterId, b.clusterId));
      if (contributors.length === 0) continue;
      for (const c of contributors) importedInto.get(c.clusterId)?.push(cluster.clusterId);
      imports.push(desiredImport(plan, cluster, contributors));
    }
  }

  const exports = verdicts.map((verdict): DesiredExport => {
    if (!verdict.valid) {
      return {
        clusterId: verdict.clusterId,
        valid: false,
        conditions: invalidExportConditions(verdict).map((spec) =>
          withTransitionTime(verdict.serviceExport.status?.conditions, spec, resolved.now),
        ),
        importedInto: [],
      };
    }
    const constituent = verdict.constituent;
    const into = importedInto.get(constituent.clusterId) ?? [];
    return {
      clusterId: constituent.clusterId,
      valid: true,
      conditions: validExportConditions(observed, constituent, constituents, conflicts, into).map((spec) =>
        withTransitionTime(constituent.serviceExport.status?.conditions, spec, resolved.now),
      ),
      importedInto: into,
    };
  });

  const result: DesiredService = { key: serviceKey(namespace, name), namespace, name, exports, imports };
  if (winner !== undefined) result.winner = winner.clusterId;
  return result;
}
