/**
 * The dashboard's view of the clusterset, as a pure function of what it observes: the hub's
 * Clusters and, per member, its exports, imports, imported slices, traffic policies and component
 * reports. No I/O here; the collector gathers the input.
 */
import type { V1Condition, V1EndpointSlice } from "@kubernetes/client-node";
import type { Cluster } from "../api/meridian.js";
import {
  LABEL_SERVICE_NAME,
  LABEL_SOURCE_CLUSTER,
  type ServiceExport,
  type ServiceImport,
} from "../api/mcs.js";
import { allowedItems } from "../gateway/access.js";
import { ANNOTATION_ALLOWED_CLUSTERS, ANNOTATION_MODE, type TrafficPolicy } from "../gateway/kube-routes.js";
import type { GatewayStatusReport } from "../gateway/kube-status.js";
import type { FailoverTier } from "../gateway/policy.js";
import { explain, type ExplainInput, type Explanation } from "../explain/explain.js";
import type {
  ClusterView,
  ConditionView,
  ConnectionView,
  CounterView,
  DashboardView,
  EndpointsView,
  ExporterView,
  Health,
  ImporterView,
  PolicyView,
  ReachabilityView,
  ServiceView,
} from "./web/view.js";

/** Successive readings of a component's counters, to derive rates. */
export interface CounterReport {
  at: string;
  counters: Record<string, number>;
}

export interface ObservedMember {
  /** The Cluster's name in the hub. */
  name: string;
  cluster: Cluster;
  connection: ConnectionView;
  exports: ServiceExport[];
  imports: ServiceImport[];
  /** Meridian's imported slices (labelled with the multi-cluster service name). */
  slices: V1EndpointSlice[];
  policies: TrafficPolicy[];
  /** Names of the member's namespaces (imports go only where the namespace exists). */
  namespaces: string[];
  gateway?: GatewayStatusReport;
  /** The two most recent counter reports of the gateway and of the DNS server, newest last. */
  gatewayCounters?: CounterReport[];
  dnsCounters?: CounterReport[];
}

export interface ObservedClusterset {
  now: Date;
  hub: { reachable: boolean; error?: string; namespace: string };
  members: ObservedMember[];
  /** Latest export-to-import propagation per service key ("ns/name"), as the controller reports. */
  propagation?: Map<string, { seconds: number; at: string }>;
}

function condition(conditions: V1Condition[] | undefined, type: string): ConditionView | undefined {
  const c = conditions?.find((k) => k.type === type);
  if (!c) return undefined;
  const since = c.lastTransitionTime ? new Date(c.lastTransitionTime).toISOString() : undefined;
  return {
    status: c.status as ConditionView["status"],
    reason: c.reason ?? "",
    message: c.message ?? "",
    ...(since ? { since } : {}),
  };
}

function clusterHealth(ready: ConditionView | undefined, connection: ConnectionView): [Health, string] {
  if (connection.state === "no-credentials") return ["unhealthy", connection.error];
  if (ready?.status === "False") return ["unhealthy", ready.message || ready.reason];
  if (connection.state === "unreachable") {
    return ready?.status === "True"
      ? ["degraded", `the controller reaches it, the dashboard does not: ${connection.error}`]
      : ["unhealthy", `API server unreachable: ${connection.error}`];
  }
  if (connection.state === "connecting" || !ready) return ["unknown", "connecting"];
  return ["healthy", ready.message || "ready"];
}

function clusterView(m: ObservedMember): ClusterView {
  const { spec, status } = m.cluster;
  const ready = condition(status?.conditions, "Ready");
  const [health, healthReason] = clusterHealth(ready, m.connection);
  const known = m.connection.state === "connected";
  // Optional fields may be undefined: JSON leaves them out.
  return {
    name: m.name,
    clusterId: spec.clusterID,
    region: spec.locality?.region,
    zone: spec.locality?.zone,
    gatewayAddresses: spec.gatewayAddresses ?? [],
    health,
    healthReason,
    ready,
    connection: m.connection,
    kubernetesVersion: status?.kubernetesVersion,
    lastHeartbeat: status?.lastHeartbeatTime ? new Date(status.lastHeartbeatTime).toISOString() : undefined,
    // Counts come from the member itself when the dashboard reaches it, else from the hub's status.
    exports: known ? m.exports.length : (status?.exports ?? 0),
    imports: known ? m.imports.length : (status?.imports ?? 0),
    conflicts: m.exports.filter((e) => condition(e.status?.conditions, "Conflict")?.status === "True").length,
  };
}

const serviceKey = (namespace: string | undefined, name: string | undefined): string =>
  `${namespace ?? ""}/${name ?? ""}`;

function tierText(tier: FailoverTier): string {
  return tier.clusters
    .map((c) => (c.weight !== undefined ? `${c.cluster}=${c.weight}` : c.cluster))
    .join(" ");
}

/** One line a person can read: what the policy asks for. */
export function policySummary(policy: TrafficPolicy): string {
  const s = policy.spec;
  const parts: string[] = [];
  parts.push(`locality ${s.locality ?? "PreferLocal"}`);
  if (s.failover?.length) parts.push(`failover ${s.failover.map((t) => `[${tierText(t)}]`).join(" → ")}`);
  if (s.weights?.length)
    parts.push(`weights ${s.weights.map((w) => `${w.cluster}=${w.weight ?? 1}`).join(" ")}`);
  if (s.unlisted === "Exclude") parts.push("unlisted clusters excluded");
  return parts.join("; ");
}

function endpointsBySource(slices: V1EndpointSlice[]): EndpointsView[] {
  const bySource = new Map<string, EndpointsView>();
  for (const slice of slices) {
    const source = slice.metadata?.labels?.[LABEL_SOURCE_CLUSTER] ?? "unknown";
    const entry = bySource.get(source) ?? { sourceCluster: source, ready: 0, total: 0 };
    for (const ep of slice.endpoints ?? []) {
      entry.total += 1;
      if (ep.conditions?.ready !== false) entry.ready += 1;
    }
    bySource.set(source, entry);
  }
  return [...bySource.values()].sort((a, b) => a.sourceCluster.localeCompare(b.sourceCluster));
}

function serviceHealth(s: Omit<ServiceView, "health" | "healthReason">): [Health, string] {
  if (s.exporters.length === 0)
    return ["unhealthy", "no cluster exports it any more; the imports are being withdrawn"];
  const valid = s.exporters.filter((e) => e.valid?.status === "True");
  if (valid.length === 0) {
    const why = s.exporters.find((e) => e.valid)?.valid?.message ?? "no export is valid yet";
    return ["unhealthy", why];
  }
  let health: Health = "healthy";
  let reason = `exported by ${valid.map((e) => e.cluster).join(", ")}`;
  if (s.conflicts.length > 0) {
    health = "degraded";
    reason = `conflict in ${s.conflicts[0]!.cluster}: ${s.conflicts[0]!.message}`;
  }
  const sources = new Map<string, number>();
  for (const imp of s.importers)
    for (const e of imp.endpoints)
      sources.set(e.sourceCluster, Math.max(sources.get(e.sourceCluster) ?? 0, e.ready));
  if (s.importers.length > 0 && [...sources.values()].every((n) => n === 0)) {
    return ["unhealthy", "no ready endpoints in any exporting cluster"];
  }
  const empty = valid.filter((e) => (sources.get(e.cluster) ?? 0) === 0).map((e) => e.cluster);
  if (s.importers.length > 0 && empty.length > 0 && health === "healthy") {
    health = "degraded";
    reason = `no ready endpoints from ${empty.join(", ")}`;
  }
  return [health, reason];
}

function exporterView(m: ObservedMember, exp: ServiceExport): ExporterView {
  const conditions = exp.status?.conditions;
  const valid = condition(conditions, "Valid");
  const ready = condition(conditions, "Ready");
  const conflict = condition(conditions, "Conflict");
  const allowed = exp.metadata.annotations?.[ANNOTATION_ALLOWED_CLUSTERS];
  return {
    cluster: m.name,
    ...(valid ? { valid } : {}),
    ...(ready ? { ready } : {}),
    ...(conflict ? { conflict } : {}),
    ...(allowed !== undefined ? { allowedClusters: allowedItems(allowed) } : {}),
    flat: exp.spec?.exportedAnnotations?.[ANNOTATION_MODE] === "flat",
  };
}

function groupByKey<T>(items: T[], keyOf: (item: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const key = keyOf(item);
    const group = groups.get(key);
    if (group) group.push(item);
    else groups.set(key, [item]);
  }
  return groups;
}

/** What one member imports of every service: ClusterSetIP, endpoints by source, gateway split. */
function importerViews(m: ObservedMember): Map<string, { ports: string[]; importer: ImporterView }> {
  const slices = groupByKey(m.slices, (slice) =>
    serviceKey(slice.metadata?.namespace, slice.metadata?.labels?.[LABEL_SERVICE_NAME]),
  );
  const routing = groupByKey(m.gateway?.services ?? [], (r) => r.service);
  const result = new Map<string, { ports: string[]; importer: ImporterView }>();
  for (const imp of m.imports) {
    const key = serviceKey(imp.metadata.namespace, imp.metadata.name);
    result.set(key, {
      ports: imp.spec.ports.map((p) => `${p.name ? `${p.name}:` : ""}${p.port}/${p.protocol ?? "TCP"}`),
      importer: {
        cluster: m.name,
        type: imp.spec.type,
        ips: imp.spec.ips ?? [],
        sourceClusters: (imp.status?.clusters ?? []).map((c) => c.cluster),
        endpoints: endpointsBySource(slices.get(key) ?? []),
        routing: (routing.get(key) ?? []).map((r) => ({
          port: r.port,
          ...(r.protocol ? { protocol: r.protocol } : {}),
          targets: r.clusters.map(({ clusterId, tier, weight, usable, sharePercent }) => ({
            clusterId,
            tier,
            weight,
            usable,
            sharePercent,
          })),
        })),
      },
    });
  }
  return result;
}

/** Each member's objects by service key, so per-service questions do not scan every member. */
interface MemberIndex {
  member: ObservedMember;
  exports: Map<string, ServiceExport>;
  imports: Map<string, ServiceImport>;
  slices: Map<string, V1EndpointSlice[]>;
  namespaces: Set<string>;
}

const byKey = <T extends { metadata: { namespace?: string; name?: string } }>(items: T[]) =>
  new Map(items.map((o) => [serviceKey(o.metadata.namespace, o.metadata.name), o]));

function indexMembers(members: ObservedMember[]): MemberIndex[] {
  return members.map((member) => ({
    member,
    exports: byKey(member.exports),
    imports: byKey(member.imports),
    slices: groupByKey(member.slices, (sl) =>
      serviceKey(sl.metadata?.namespace, sl.metadata?.labels?.[LABEL_SERVICE_NAME]),
    ),
    namespaces: new Set(member.namespaces),
  }));
}

/**
 * What `meridian explain` needs, from what the dashboard watches. It cannot look inside a cluster's
 * network, so the DNS and live-connection checks are left to the CLI; whether a Service exists is
 * read from the exports' Valid condition.
 */
function explainInput(index: MemberIndex[], namespace: string, service: string, from: string): ExplainInput {
  const key = serviceKey(namespace, service);
  const consumer = index.find((m) => m.member.name === from);
  const imp = consumer?.imports.get(key);
  return {
    namespace,
    service,
    from,
    members: index.map(({ member, exports, namespaces }) => {
      const exp = exports.get(key);
      const exporter = exp ? exporterView(member, exp) : undefined;
      const conditions = Object.fromEntries(
        (exp?.status?.conditions ?? []).map((c) => [
          c.type,
          { status: c.status, reason: c.reason ?? "", message: c.message ?? "" },
        ]),
      );
      return {
        cluster: member.name,
        reachable: member.connection.state === "connected",
        namespaceExists: namespaces.has(namespace),
        hasService: exporter !== undefined && exporter.valid?.reason !== "NoService",
        serviceExport: exp ? { conditions, allowedClusters: exporter?.allowedClusters } : undefined,
      };
    }),
    serviceImport: imp && {
      type: imp.spec.type,
      ips: imp.spec.ips ?? [],
      ports: imp.spec.ports,
      clusters: (imp.status?.clusters ?? []).map((c) => c.cluster),
      flat: imp.metadata.annotations?.[ANNOTATION_MODE] === "flat",
    },
    endpoints: endpointsBySource(consumer?.slices.get(key) ?? []).map((e) => ({
      cluster: e.sourceCluster,
      ready: e.ready,
      notReady: e.total - e.ready,
    })),
    gateway: consumer?.member.gateway,
  };
}

/** Every check along the path from `from`, for the dashboard's "why" panel. */
export function explainFrom(
  observed: ObservedClusterset,
  namespace: string,
  service: string,
  from: string,
): Explanation {
  return explain(explainInput(indexMembers(observed.members), namespace, service, from));
}

/**
 * From every member the dashboard reaches: would a connection get through, and if not, where does
 * the path break. Computed on request (a service's page), not for every service on every update.
 */
export function reachabilityOf(
  observed: ObservedClusterset,
  namespace: string,
  service: string,
): ReachabilityView[] {
  const index = indexMembers(observed.members);
  return index
    .filter((m) => m.member.connection.state === "connected")
    .map(({ member }) => {
      const verdict = explain(explainInput(index, namespace, service, member.name));
      const fail = verdict.steps.find((st) => st.status === "fail");
      return {
        cluster: member.name,
        reachable: verdict.reachable,
        problem: fail && { check: fail.check, detail: fail.detail, hint: fail.hint },
      };
    });
}

function servicesView(
  members: ObservedMember[],
  propagation: ObservedClusterset["propagation"],
): ServiceView[] {
  const services = new Map<string, Omit<ServiceView, "health" | "healthReason">>();
  const entry = (key: string) => {
    let s = services.get(key);
    if (!s) {
      const [namespace, name] = key.split("/") as [string, string];
      s = { namespace, name, ports: [], exporters: [], importers: [], policies: [], conflicts: [] };
      services.set(key, s);
    }
    return s;
  };
  for (const m of members) {
    for (const exp of m.exports) {
      const s = entry(serviceKey(exp.metadata.namespace, exp.metadata.name));
      const exporter = exporterView(m, exp);
      s.exporters.push(exporter);
      if (exporter.conflict?.status === "True")
        s.conflicts.push({
          cluster: m.name,
          reason: exporter.conflict.reason,
          message: exporter.conflict.message,
        });
    }
    for (const [key, { ports, importer }] of importerViews(m)) {
      const s = entry(key);
      if (s.ports.length === 0) s.ports = ports;
      s.importers.push(importer);
    }
    for (const p of m.policies) {
      const s = services.get(serviceKey(p.metadata?.namespace, p.spec?.serviceRef?.name));
      const view: PolicyView = { cluster: m.name, name: p.metadata?.name ?? "", summary: policySummary(p) };
      s?.policies.push(view);
    }
  }
  return [...services.values()]
    .map((s) => {
      const [health, healthReason] = serviceHealth(s);
      const p = propagation?.get(serviceKey(s.namespace, s.name));
      return {
        ...s,
        exporters: s.exporters.sort((a, b) => a.cluster.localeCompare(b.cluster)),
        importers: s.importers.sort((a, b) => a.cluster.localeCompare(b.cluster)),
        health,
        healthReason,
        ...(p ? { propagation: { lastSeconds: p.seconds, at: p.at } } : {}),
      };
    })
    .sort((a, b) => serviceKey(a.namespace, a.name).localeCompare(serviceKey(b.namespace, b.name)));
}

/** Totals from the newest report, and per-second rates against the one before it. */
export function counterViews(reports: CounterReport[] | undefined): CounterView[] | undefined {
  const latest = reports?.at(-1);
  if (!latest) return undefined;
  const previous = reports!.length > 1 ? reports!.at(-2) : undefined;
  const seconds = previous ? (Date.parse(latest.at) - Date.parse(previous.at)) / 1000 : 0;
  return Object.entries(latest.counters)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([name, total]) => {
      const before = previous?.counters[name];
      // A restarted component starts its counters again: no rate across the reset.
      const rate =
        before !== undefined && seconds > 0 && total >= before ? (total - before) / seconds : undefined;
      return { name, total, ...(rate !== undefined ? { perSecond: Math.round(rate * 100) / 100 } : {}) };
    });
}

export function dashboardView(observed: ObservedClusterset): DashboardView {
  const members = [...observed.members].sort((a, b) => a.name.localeCompare(b.name));
  return {
    generatedAt: observed.now.toISOString(),
    hub: observed.hub,
    clusters: members.map(clusterView),
    services: servicesView(members, observed.propagation),
    gateways: members
      .filter((m) => m.gateway !== undefined || m.gatewayCounters !== undefined)
      .map((m) => {
        const traffic = counterViews(m.gatewayCounters);
        return {
          cluster: m.name,
          peers: m.gateway?.peers ?? [],
          services: new Set((m.gateway?.services ?? []).map((s) => s.service)).size,
          ...(m.gateway?.atLimit ? { atLimit: m.gateway.atLimit } : {}),
          ...(traffic ? { traffic } : {}),
        };
      }),
    dns: members
      .filter((m) => m.dnsCounters !== undefined)
      .map((m) => ({ cluster: m.name, traffic: counterViews(m.dnsCounters) ?? [] })),
  };
}
