/**
 * `meridian explain`: why a multi-cluster service is or is not reachable from one cluster, as a
 * walk along the path a connection takes: the Service and its exports, the import in the consuming
 * cluster, endpoints per source cluster, the DNS answer there, access control at the exporters, the
 * consuming gateway's routing and peers, and a live connection. This module is the pure verdict
 * over what was observed; `src/cli/explain.ts` observes.
 */
import { accessOfCluster, parseAllowedConsumers } from "../gateway/access.js";
import type { LimitCause } from "../gateway/gateway.js";
import { portLabel, type GatewayStatusReport } from "../gateway/kube-status.js";
import { gatewayCarries } from "../gateway/protocol.js";

export type StepStatus = "ok" | "warn" | "fail" | "skipped";

export interface ExplainStep {
  check: string;
  status: StepStatus;
  detail: string;
  /** What to do about it, for warn and fail. */
  hint?: string;
}

export interface Condition {
  status: string;
  reason: string;
  message: string;
}

export interface MemberObservation {
  cluster: string;
  reachable: boolean;
  namespaceExists: boolean;
  hasService: boolean;
  serviceExport?: {
    conditions: Record<string, Condition>;
    /** The items of `gateway.meridian.dev/allowed-clusters`; undefined: anyone (the default). */
    allowedClusters?: string[];
  };
}

export interface ExplainInput {
  namespace: string;
  service: string;
  from: string;
  members: MemberObservation[];
  /** The ServiceImport in `from`. */
  serviceImport?: {
    type: string;
    ips: string[];
    ports: Array<{ name?: string; port: number; protocol?: string }>;
    clusters: string[];
    flat: boolean;
  };
  /** Imported endpoints in `from`, per source cluster. */
  endpoints: Array<{ cluster: string; ready: number; notReady: number }>;
  /** Undefined when not checked (no way into the cluster's network from here). */
  dns?: { answers: string[] } | { error: string };
  /** The `from` gateway's report; undefined when it has none. */
  gateway?: GatewayStatusReport;
  connection?: { ok: boolean; detail: string };
}

export interface Explanation {
  namespace: string;
  service: string;
  from: string;
  reachable: boolean;
  steps: ExplainStep[];
}

const list = (xs: readonly string[]): string => (xs.length === 0 ? "none" : xs.join(", "));

function consumerStep(input: ExplainInput, consumer: MemberObservation | undefined): ExplainStep {
  if (!consumer)
    return {
      check: "consumer",
      status: "fail",
      detail: `${input.from} is not a member of the clusterset`,
      hint: "see 'meridian status' for the members, or join it with 'meridian join'",
    };
  if (!consumer.reachable)
    return {
      check: "consumer",
      status: "fail",
      detail: `${input.from}'s API server does not answer`,
      hint: "see 'meridian status'",
    };
  return { check: "consumer", status: "ok", detail: `${input.from} answers` };
}

function serviceStep(input: ExplainInput): ExplainStep {
  const key = `${input.namespace}/${input.service}`;
  const withService = input.members.filter((m) => m.hasService).map((m) => m.cluster);
  if (withService.length === 0)
    return {
      check: "service",
      status: "fail",
      detail: `no member has a Service ${key}`,
      hint: `create the Service in the cluster(s) that run it`,
    };
  return { check: "service", status: "ok", detail: `Service ${key} exists in ${list(withService)}` };
}

function exportSteps(input: ExplainInput): ExplainStep[] {
  const exporters = input.members.filter((m) => m.serviceExport);
  if (exporters.length === 0) {
    const candidate = input.members.find((m) => m.hasService)?.cluster ?? "<cluster>";
    return [
      {
        check: "export",
        status: "fail",
        detail: `${input.namespace}/${input.service} is exported from no cluster`,
        hint: `meridian export ${input.service} -n ${input.namespace} --cluster ${candidate}`,
      },
    ];
  }
  return exporters.map((m) => {
    const c = m.serviceExport!.conditions;
    const check = `export in ${m.cluster}`;
    if (c["Valid"]?.status === "False")
      return {
        check,
        status: "fail",
        detail: `invalid (${c["Valid"].reason}): ${c["Valid"].message}`,
        hint: "fix what the message names; the export is ignored until then",
      };
    if (c["Conflict"]?.status === "True")
      return {
        check,
        status: "warn",
        detail: `conflict (${c["Conflict"].reason}): ${c["Conflict"].message}`,
        hint: "make the exports agree; until then the oldest export's properties apply",
      };
    if (!c["Valid"])
      return {
        check,
        status: "warn",
        detail: "no conditions yet: the controller has not seen it",
        hint: "is the controller running? see 'meridian status'",
      };
    return { check, status: "ok", detail: c["Ready"]?.message || "valid, no conflict" };
  });
}

function importStep(input: ExplainInput, consumer: MemberObservation | undefined): ExplainStep {
  const si = input.serviceImport;
  if (!si) {
    if (consumer && !consumer.namespaceExists)
      return {
        check: `import in ${input.from}`,
        status: "fail",
        detail: `namespace ${input.namespace} does not exist in ${input.from}; imports go only where it does`,
        hint: `kubectl --context ${input.from} create namespace ${input.namespace}`,
      };
    return {
      check: `import in ${input.from}`,
      status: "fail",
      detail: `no ServiceImport ${input.namespace}/${input.service} in ${input.from}`,
      hint: "see the exports' Ready conditions: an export limited to other clusters, or one not valid, imports nothing here",
    };
  }
  const ports = si.ports.map((p) => `${p.port}/${p.protocol ?? "TCP"}`).join(", ");
  const address = si.type === "ClusterSetIP" ? `ClusterSetIP ${list(si.ips)}` : "Headless";
  return {
    check: `import in ${input.from}`,
    status: si.type === "ClusterSetIP" && si.ips.length === 0 ? "fail" : "ok",
    detail: `${address}, ports ${ports || "none"}, from ${list(si.clusters)}${si.flat ? " (flat mode)" : ""}`,
    ...(si.type === "ClusterSetIP" && si.ips.length === 0
      ? { hint: "the import has no ClusterSetIP yet: see the controller's log" }
      : {}),
  };
}

function endpointsStep(input: ExplainInput): ExplainStep {
  const ready = input.endpoints.reduce((n, e) => n + e.ready, 0);
  const detail = input.endpoints
    .map((e) => `${e.cluster}: ${e.ready} ready, ${e.notReady} not ready`)
    .join("; ");
  if (ready === 0)
    return {
      check: "endpoints",
      status: "fail",
      detail: detail || `no imported endpoints in ${input.from}`,
      hint: "no exporting cluster has a ready pod behind the Service (or its cluster is unreachable): check the pods there",
    };
  return { check: "endpoints", status: "ok", detail };
}

function dnsStep(input: ExplainInput): ExplainStep {
  const name = `${input.service}.${input.namespace}.svc.clusterset.local`;
  if (!input.dns)
    return {
      check: "dns",
      status: "skipped",
      detail: `not checked (needs a way into ${input.from}'s network)`,
    };
  if ("error" in input.dns)
    return {
      check: "dns",
      status: "fail",
      detail: `${name} does not resolve in ${input.from}: ${input.dns.error}`,
      hint: `is ${input.from}'s clusterset.local DNS running? see 'meridian status'`,
    };
  const { answers } = input.dns;
  const expected = input.serviceImport?.type === "ClusterSetIP" ? input.serviceImport.ips : [];
  const missing = expected.filter((ip) => !answers.includes(ip));
  if (answers.length === 0 || missing.length > 0)
    return {
      check: "dns",
      status: "fail",
      detail: `${name} answers ${list(answers)}${missing.length ? `, not ${list(missing)}` : ""}`,
      hint: "the member's DNS lags its API server or failed to sync: see its log",
    };
  return { check: "dns", status: "ok", detail: `${name} → ${list(answers)}` };
}

function accessStep(input: ExplainInput): ExplainStep {
  const withEndpoints = new Set(input.endpoints.filter((e) => e.ready > 0).map((e) => e.cluster));
  // A cluster's own endpoints are reached directly, not through its gateway's access check.
  const restricting = input.members.flatMap((m) => {
    const items = m.serviceExport?.allowedClusters;
    if (m.cluster === input.from || !items) return [];
    const access = accessOfCluster(parseAllowedConsumers(items).entries, input.from);
    return access === "all" ? [] : [{ cluster: m.cluster, items, access }];
  });
  const refusing = restricting.filter((r) => r.access === "none");
  const scoped = restricting.flatMap((r) => (r.access === "none" ? [] : [{ ...r, namespaces: r.access }]));
  if (restricting.length === 0)
    return { check: "access", status: "ok", detail: `no exporter restricts ${input.from}` };
  const refusingWithEndpoints = refusing.filter((m) => withEndpoints.has(m.cluster));
  const allRefuse = [...withEndpoints].every((c) => refusing.some((m) => m.cluster === c));
  const details = [
    ...(refusing.length > 0
      ? [
          `${list(refusing.map((m) => m.cluster))} ${refusing.length === 1 ? "refuses" : "refuse"} ${input.from} (allowed: ${refusing
            .map((m) => `${m.cluster}: ${list(m.items)}`)
            .join("; ")})`,
        ]
      : []),
    // Which namespace a client is in is only known per connection, so this can only warn.
    ...scoped.map((m) => `${m.cluster} lets in clients of ${input.from} in ${list(m.namespaces)} only`),
  ];
  return {
    check: "access",
    status: allRefuse && withEndpoints.size > 0 ? "fail" : "warn",
    detail: details.join("; "),
    hint:
      refusingWithEndpoints.length > 0
        ? `add ${input.from} to gateway.meridian.dev/allowed-clusters on the ServiceExport in ${list(refusingWithEndpoints.map((m) => m.cluster))} (or ${input.from}/<namespace>, for one namespace of it)`
        : scoped.length > 0
          ? `connect from a pod in an allowed namespace of ${input.from}`
          : undefined,
  };
}

/** Gateways carry TCP and UDP; SCTP reaches remote pods only in flat mode. */
export const FLAT_MODE_HINT =
  "SCTP needs flat mode where pod networks are routed between clusters: gateway.meridian.dev/mode: flat in the ServiceExport's spec.exportedAnnotations; or serve the port over TCP or UDP";

/** The step for imports no gateway routes: flat and headless ones. */
function unroutedStep(input: ExplainInput): ExplainStep | undefined {
  const si = input.serviceImport;
  if (si?.flat)
    return {
      check: "gateway",
      status: "ok",
      detail: "flat mode: clients reach the exporters' pods directly",
    };
  if (si && si.type !== "ClusterSetIP")
    return {
      check: "gateway",
      status: "skipped",
      detail: "headless imports are not routed through gateways",
    };
  return undefined;
}

/** The ports no gateway carries (SCTP), as `port/PROTOCOL`. */
export const portsGatewaysCannotCarry = (
  ports: ReadonlyArray<{ port: number; protocol?: string }>,
): string[] => ports.filter((p) => !gatewayCarries(p.protocol)).map((p) => `${p.port}/${p.protocol}`);

/** What to do about each limit a consumer's gateway refuses new connections at. */
const LIMIT_HINTS: Record<LimitCause, string> = {
  "max-connections": "at --max-connections: raise it, or run more gateway replicas",
  "open-files":
    "for want of file descriptors: raise its open-file limit (the hard one), or run more gateway replicas",
};

/** The consumer's gateway has no route for the service: it cannot cross, or the gateway has not seen it. */
function unservedStep(input: ExplainInput, key: string, uncarried: string[]): ExplainStep {
  return uncarried.length > 0 && uncarried.length === input.serviceImport?.ports.length
    ? {
        check: "gateway",
        status: "fail",
        detail: `${key} has no TCP or UDP port: ${list(uncarried)} cannot cross a gateway`,
        hint: FLAT_MODE_HINT,
      }
    : {
        check: "gateway",
        status: "fail",
        detail: `${input.from}'s gateway does not serve ${key}`,
        hint: "the gateway has not seen the import yet: is it running? see 'meridian status'",
      };
}

function routingStep(input: ExplainInput): ExplainStep {
  const unrouted = unroutedStep(input);
  if (unrouted) return unrouted;
  if (!input.gateway)
    return {
      check: "gateway",
      status: "warn",
      detail: `${input.from}'s gateway has not reported its routing`,
      hint: `is ${input.from}'s gateway running? see 'meridian status'`,
    };
  const key = `${input.namespace}/${input.service}`;
  const routes = input.gateway.services.filter((s) => s.service === key);
  const uncarried = portsGatewaysCannotCarry(input.serviceImport?.ports ?? []);
  if (routes.length === 0) return unservedStep(input, key, uncarried);
  const down = input.gateway.peers.filter((p) => !p.available).map((p) => p.clusterId);
  const parts = routes.map((r) => {
    const usable = r.clusters.filter((c) => c.usable && c.sharePercent > 0);
    return {
      usable,
      text: `port ${portLabel(r)}: ${usable.length ? usable.map((c) => `${c.clusterId} ${c.sharePercent}%`).join(", ") : "no usable cluster"}`,
    };
  });
  const broken = parts.some((p) => p.usable.length === 0);
  const limit = input.gateway.atLimit?.outbound;
  // The first of what is wrong, most serious first, says what to do.
  const hints: Array<[boolean, string]> = [
    [
      broken,
      `no exporting cluster is usable from ${input.from}: their gateways are down or have no ready endpoints`,
    ],
    [
      limit !== undefined,
      limit ? `${input.from}'s gateway is refusing new connections ${LIMIT_HINTS[limit]}` : "",
    ],
    [down.length > 0, `peer gateways down: ${list(down)}; traffic avoids them`],
    [uncarried.length > 0, FLAT_MODE_HINT],
  ];
  const hint = hints.find(([applies]) => applies)?.[1];
  return {
    check: "gateway",
    status: broken ? "fail" : hint ? "warn" : "ok",
    detail: [
      ...parts.map((p) => p.text),
      ...(limit ? [`refusing new connections at its limit (${limit})`] : []),
      ...(down.length > 0 ? [`peers down: ${list(down)}`] : []),
      ...(uncarried.length > 0 ? [`${list(uncarried)} not carried (gateways carry TCP and UDP)`] : []),
    ].join("; "),
    ...(hint ? { hint } : {}),
  };
}

function connectionStep(input: ExplainInput): ExplainStep {
  const ports = input.serviceImport?.ports ?? [];
  if (!input.connection && ports.length > 0 && ports.every((p) => p.protocol === "UDP"))
    return {
      check: "connection",
      status: "skipped",
      detail: "not tried: the import has only UDP ports, and a UDP service need not answer a probe",
    };
  if (!input.connection) return { check: "connection", status: "skipped", detail: "not tried" };
  return input.connection.ok
    ? { check: "connection", status: "ok", detail: input.connection.detail }
    : {
        check: "connection",
        status: "fail",
        detail: input.connection.detail,
        hint: "the earlier steps say where the path breaks",
      };
}

export function explain(input: ExplainInput): Explanation {
  const consumer = input.members.find((m) => m.cluster === input.from);
  const steps = [
    consumerStep(input, consumer),
    serviceStep(input),
    ...exportSteps(input),
    importStep(input, consumer),
    endpointsStep(input),
    dnsStep(input),
    accessStep(input),
    routingStep(input),
    connectionStep(input),
  ];
  return {
    namespace: input.namespace,
    service: input.service,
    from: input.from,
    reachable: steps.every((s) => s.status !== "fail"),
    steps,
  };
}
