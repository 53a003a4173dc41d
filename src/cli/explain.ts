/**
 * `meridian explain <svc> -n NS --from <cluster>`: observes every member (the Service, its export,
 * the import, endpoints, the gateway's report) and, in the local clusterset, the DNS answer and a
 * live connection from inside the consuming cluster's network; `src/explain/explain.ts` judges.
 */
import type { Command } from "commander";
import { Option } from "commander";
import type { KubernetesObject, V1ConfigMap, V1EndpointSlice } from "@kubernetes/client-node";
import {
  LABEL_SERVICE_NAME,
  LABEL_SOURCE_CLUSTER,
  MCS_API_VERSION,
  type ServiceExport,
  type ServiceImport,
} from "../api/mcs.js";
import { MEMBER_NAMESPACE } from "../api/meridian.js";
import { explain, type ExplainInput, type Explanation, type MemberObservation } from "../explain/explain.js";
import { allowedItems } from "../gateway/access.js";
import { ANNOTATION_ALLOWED_CLUSTERS, ANNOTATION_MODE } from "../gateway/kube-routes.js";
import { parseGatewayStatus, STATUS_CONFIGMAP } from "../gateway/kube-status.js";
import type { ClusterClient } from "../kube/client.js";
import { captureInMember } from "../local/pods.js";
import { readClusterset, resolveStateDir, StatePaths, UserError } from "../local/state.js";
import { isDnsLabel } from "../controller/names.js";
import { clientFor } from "./mcs.js";
import { parseOutputFormat, renderStructured, renderTable } from "./output.js";

async function observeMember(
  client: ClusterClient,
  namespace: string,
  service: string,
): Promise<MemberObservation> {
  const cluster = client.name;
  try {
    const ns = await client.read({ apiVersion: "v1", kind: "Namespace", metadata: { name: namespace } });
    const svc = ns
      ? await client.read({ apiVersion: "v1", kind: "Service", metadata: { name: service, namespace } })
      : undefined;
    const exp = ns
      ? await client.read<ServiceExport & KubernetesObject>({
          apiVersion: MCS_API_VERSION,
          kind: "ServiceExport",
          metadata: { name: service, namespace },
        })
      : undefined;
    const allowed = exp?.metadata.annotations?.[ANNOTATION_ALLOWED_CLUSTERS];
    return {
      cluster,
      reachable: true,
      namespaceExists: ns !== undefined,
      hasService: svc !== undefined,
      ...(exp
        ? {
            serviceExport: {
              conditions: Object.fromEntries(
                (exp.status?.conditions ?? []).map((c) => [
                  c.type,
                  { status: c.status, reason: c.reason ?? "", message: c.message ?? "" },
                ]),
              ),
              ...(allowed !== undefined
                ? {
                    allowedClusters: allowedItems(allowed),
                  }
                : {}),
            },
          }
        : {}),
    };
  } catch {
    return { cluster, reachable: false, namespaceExists: false, hasService: false };
  }
}

async function observeConsumer(
  client: ClusterClient,
  namespace: string,
  service: string,
): Promise<Pick<ExplainInput, "serviceImport" | "endpoints" | "gateway">> {
  try {
    const si = await client.read<ServiceImport & KubernetesObject>({
      apiVersion: MCS_API_VERSION,
      kind: "ServiceImport",
      metadata: { name: service, namespace },
    });
    const slices = await client.discovery.listNamespacedEndpointSlice({
      namespace,
      labelSelector: `${LABEL_SERVICE_NAME}=${service}`,
    });
    const gateway = parseGatewayStatus(
      await client.read<V1ConfigMap & KubernetesObject>({
        apiVersion: "v1",
        kind: "ConfigMap",
        metadata: { name: STATUS_CONFIGMAP, namespace: MEMBER_NAMESPACE },
      }),
    );
    return {
      ...(si ? { serviceImport: importSummary(si) } : {}),
      endpoints: endpointCounts(slices.items),
      ...(gateway ? { gateway } : {}),
    };
  } catch {
    return { endpoints: [] };
  }
}

function importSummary(si: ServiceImport & KubernetesObject): NonNullable<ExplainInput["serviceImport"]> {
  return {
    type: si.spec.type,
    ips: si.spec.ips ?? [],
    ports: si.spec.ports ?? [],
    clusters: (si.status?.clusters ?? []).map((c) => c.cluster),
    flat: si.metadata?.annotations?.[ANNOTATION_MODE] === "flat",
  };
}

/** Ready and not-ready endpoint addresses per source cluster, by cluster name. */
function endpointCounts(slices: V1EndpointSlice[]): ExplainInput["endpoints"] {
  const byCluster = new Map<string, { ready: number; notReady: number }>();
  for (const slice of slices) {
    const source = slice.metadata?.labels?.[LABEL_SOURCE_CLUSTER] ?? "?";
    const counts = byCluster.get(source) ?? { ready: 0, notReady: 0 };
    for (const ep of slice.endpoints ?? []) {
      if (ep.conditions?.ready === false) counts.notReady += ep.addresses.length;
      else counts.ready += ep.addresses.length;
    }
    byCluster.set(source, counts);
  }
  return [...byCluster]
    .map(([cluster, c]) => ({ cluster, ...c }))
    .sort((a, b) => a.cluster.localeCompare(b.cluster));
}

/** DNS and a live connection, from inside the consuming member's network (local clusterset only). */
async function probeFromInside(
  stateDir: string,
  input: ExplainInput,
): Promise<Pick<ExplainInput, "dns" | "connection">> {
  const name = `${input.service}.${input.namespace}.svc.clusterset.local`;
  const dig = await captureInMember(stateDir, input.from, [
    "dig",
    "+short",
    "+time=2",
    "+tries=1",
    name,
    "A",
  ]);
  const answers = dig.stdout
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => /^[0-9.]+$/.test(l));
  const dns = dig.code === 0 ? { answers } : { error: dig.stderr.trim() || `dig exited ${dig.code}` };
  const si = input.serviceImport;
  const port = si?.ports.find((p) => (p.protocol ?? "TCP") === "TCP")?.port;
  const ip = si?.type === "ClusterSetIP" ? si.ips.find((x) => !x.includes(":")) : undefined;
  if (!ip || port === undefined) return { dns };
  // Connected and still open after a second (the service waits for a request), or it spoke first:
  // the path reaches a backend. Closed at once with nothing said: something on the way gave up.
  const script =
    `exec 3<>/dev/tcp/${ip}/${port} || exit 10; read -t 1 -n 1 -u 3 _; rc=$?; ` +
    `{ [ $rc -eq 0 ] || [ $rc -gt 128 ]; } && exit 0; exit 11`;
  const probe = await captureInMember(stateDir, input.from, ["bash", "-c", script], 6000);
  const target = `${ip}:${port}`;
  const connection =
    probe.code === 0
      ? { ok: true, detail: `connected to ${target} from inside ${input.from}; the path reached a backend` }
      : probe.code === 10
        ? { ok: false, detail: `${target} refused the connection in ${input.from}` }
        : { ok: false, detail: `${target} accepted, then closed without an answer` };
  return { dns, connection };
}

const MARK: Record<string, string> = { ok: "✔", warn: "!", fail: "✖", skipped: "-" };

export function renderExplanation(e: Explanation): string {
  const rows = e.steps.map((s) => [MARK[s.status]!, s.check, s.detail + (s.hint ? `\n  → ${s.hint}` : "")]);
  const head = `${e.namespace}/${e.service} from ${e.from}: ${e.reachable ? "reachable" : "NOT reachable"}\n\n`;
  return head + renderTable(["", "CHECK", "FINDING"], rows);
}

export function registerExplainCommand(program: Command): void {
  program
    .command("explain")
    .description("walk the path from a cluster to a multi-cluster service and say where it breaks")
    .argument("<service>", "Service name")
    .option("-n, --namespace <ns>", "namespace", "default")
    .requiredOption("--from <cluster>", "the consuming cluster")
    .option("-o, --output <format>", "table, json or yaml", "table")
    .option("--kubeconfig <file>", "kubeconfig with a context per member (default: the local clusterset's)")
    .option("--clusters <names>", "members to look at, comma-separated (default: the local clusterset's)")
    .addOption(new Option("--state-dir <dir>").hideHelp())
    .action(
      async (
        service: string,
        opts: {
          namespace: string;
          from: string;
          output: string;
          kubeconfig?: string;
          clusters?: string;
          stateDir?: string;
        },
      ) => {
        const format = parseOutputFormat(opts.output);
        if (!isDnsLabel(service)) throw new UserError(`invalid service name "${service}"`);
        const stateDir = resolveStateDir(opts.stateDir);
        const record = opts.kubeconfig ? undefined : readClusterset(new StatePaths(stateDir));
        const names = opts.clusters
          ? opts.clusters.split(",").map((c) => c.trim())
          : (record?.clusters.filter((c) => c.role === "member").map((c) => c.name) ?? []);
        if (names.length === 0)
          throw new UserError(
            "no members to look at: run 'meridian up', or pass --kubeconfig and --clusters",
          );
        if (!names.includes(opts.from))
          throw new UserError(`--from ${opts.from} is not one of the members (${names.join(", ")})`);
        const clients = names.map((n) => clientFor(n, opts));
        const members = await Promise.all(clients.map((c) => observeMember(c, opts.namespace, service)));
        const consumer = clients[names.indexOf(opts.from)]!;
        const input: ExplainInput = {
          namespace: opts.namespace,
          service,
          from: opts.from,
          members,
          ...(await observeConsumer(consumer, opts.namespace, service)),
        };
        if (record && members.find((m) => m.cluster === opts.from)?.reachable)
          Object.assign(input, await probeFromInside(stateDir, input));
        const result = explain(input);
        process.stdout.write(
          format === "table" ? `${renderExplanation(result)}` : renderStructured(result, format),
        );
        process.exitCode = result.reachable ? 0 : 2;
      },
    );
}
