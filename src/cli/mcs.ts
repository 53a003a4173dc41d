/** CLI commands of the multi-cluster services core: controller, join, leave, export, unexport. */
import { existsSync } from "node:fs";
import type { Command } from "commander";
import { Option } from "commander";
import type { KubernetesObject, V1ConfigMap, V1Service } from "@kubernetes/client-node";
import { MCS_API_VERSION, type ServiceExport, type ServiceImport } from "../api/mcs.js";
import { apiErrorMessage, ClusterClient } from "../kube/client.js";
import { join, leave } from "../membership/join.js";
import { readClusterset, resolveStateDir, StatePaths, UserError } from "../local/state.js";
import { ANNOTATION_EXPORT_TO, isDnsLabel } from "../controller/names.js";
import { MEMBER_NAMESPACE } from "../api/meridian.js";
import { FLAT_MODE_HINT, portsGatewaysCannotCarry } from "../explain/explain.js";
import { parseGatewayStatus, STATUS_CONFIGMAP, type GatewayStatusReport } from "../gateway/kube-status.js";

interface KubeFlags {
  kubeconfig?: string;
  stateDir?: string;
}

/** A kubeconfig: --kubeconfig, else the local clusterset's, else $KUBECONFIG / ~/.kube/config. */
function kubeconfigPath(flags: KubeFlags): string | undefined {
  if (flags.kubeconfig) return flags.kubeconfig;
  const local = new StatePaths(resolveStateDir(flags.stateDir)).kubeconfig;
  return existsSync(local) ? local : undefined;
}

export function clientFor(context: string, flags: KubeFlags): ClusterClient {
  const file = kubeconfigPath(flags);
  if (file) return ClusterClient.fromFile(file, context);
  const defaultFile = process.env["KUBECONFIG"] ?? `${process.env["HOME"] ?? ""}/.kube/config`;
  if (!existsSync(defaultFile)) {
    throw new UserError(`no kubeconfig: pass --kubeconfig, run 'meridian up', or set KUBECONFIG`);
  }
  return ClusterClient.fromFile(defaultFile, context);
}

interface MembershipFlags extends KubeFlags {
  context?: string;
  hubKubeconfig?: string;
  hubContext: string;
}

/** The flags join and leave share: admin access to the member and to the hub. */
function withMembershipFlags(command: Command): Command {
  return command
    .option(
      "--kubeconfig <file>",
      "kubeconfig with admin access to the member (default: the local clusterset's)",
    )
    .option("--context <name>", "the member's context (default: <name>)")
    .option("--hub-kubeconfig <file>", "kubeconfig of the hub (default: --kubeconfig)")
    .option("--hub-context <name>", "the hub's context", "hub")
    .addOption(new Option("--state-dir <dir>").hideHelp());
}

function hubClientFor(opts: MembershipFlags): ClusterClient {
  return clientFor(opts.hubContext, { ...opts, kubeconfig: opts.hubKubeconfig ?? opts.kubeconfig });
}

function serviceExportObject(name: string, namespace: string, to?: string): ServiceExport & KubernetesObject {
  return {
    apiVersion: MCS_API_VERSION,
    kind: "ServiceExport",
    metadata: {
      name,
      namespace,
      ...(to !== undefined ? { annotations: { [ANNOTATION_EXPORT_TO]: to } } : {}),
    },
  };
}

export function registerMcsCommands(program: Command): void {
  const joinCommand = program
    .command("join")
    .description(
      "join a cluster to the clusterset: a least-privilege identity for the controller, registered in the hub",
    )
    .argument("<name>", "cluster name (a DNS label)")
    .option("--cluster-id <id>", "cluster ID (default: the member's cluster.clusterset.k8s.io, else <name>)")
    .option("--clusterset <name>", "clusterset name for clusterset.k8s.io")
    .option(
      "--server <url>",
      "API server URL the controller should use for the member (default: the kubeconfig's)",
    )
    .option("--region <region>")
    .option("--zone <zone>")
    .option("--gateway <host:port...>", "the member's east-west gateway address(es)");
  withMembershipFlags(joinCommand).action(
    async (
      name: string,
      opts: MembershipFlags & {
        clusterId?: string;
        clusterset?: string;
        server?: string;
        region?: string;
        zone?: string;
        gateway?: string[];
      },
    ) => {
      const member = clientFor(opts.context ?? name, opts);
      const hub = hubClientFor(opts);
      const record = readClusterset(new StatePaths(resolveStateDir(opts.stateDir)));
      const cluster = await join({
        name,
        clusterID: opts.clusterId,
        clustersetName: opts.clusterset ?? (record ? `local-${record.id}` : "default"),
        member,
        hub,
        memberServer: opts.server,
        region: opts.region,
        zone: opts.zone,
        gatewayAddresses: opts.gateway,
        log: (l) => process.stderr.write(`${l}\n`),
      }).catch((err: unknown) => {
        if (err instanceof UserError) throw err;
        throw new UserError(`join ${name} failed: ${apiErrorMessage(err)}`);
      });
      process.stdout.write(`cluster/${name} joined (cluster ID ${cluster.spec.clusterID})\n`);
    },
  );

  const leaveCommand = program
    .command("leave")
    .description("remove a cluster from the clusterset, and everything Meridian wrote in it")
    .argument("<name>", "cluster name")
    .option("--hub-only", "only remove the hub registration (the member is gone)");
  withMembershipFlags(leaveCommand).action(
    async (name: string, opts: MembershipFlags & { hubOnly?: boolean }) => {
      const hub = hubClientFor(opts);
      const member = opts.hubOnly ? undefined : clientFor(opts.context ?? name, opts);
      const res = await leave({ name, hub, member, log: (l) => process.stderr.write(`${l}\n`) });
      process.stdout.write(
        `cluster/${name} left the clusterset${res.memberCleaned ? "" : " (member not cleaned: --hub-only)"}\n`,
      );
    },
  );

  program
    .command("export")
    .description("export a Service of one cluster to the clusterset (creates its ServiceExport)")
    .argument("<service>", "Service name")
    .requiredOption("--cluster <name>", "cluster (kubeconfig context) the Service runs in")
    .option("-n, --namespace <ns>", "namespace", "default")
    .option("--to <clusters>", "only import it into these cluster IDs (comma-separated)")
    .option("--kubeconfig <file>")
    .addOption(new Option("--state-dir <dir>").hideHelp())
    .action(
      async (
        service: string,
        opts: { cluster: string; namespace: string; to?: string; kubeconfig?: string; stateDir?: string },
      ) => {
        if (!isDnsLabel(service)) throw new UserError(`invalid service name "${service}"`);
        const client = clientFor(opts.cluster, opts);
        try {
          await client.apply(serviceExportObject(service, opts.namespace, opts.to), "meridian-cli");
        } catch (err) {
          throw new UserError(
            `cannot export ${opts.namespace}/${service} in ${opts.cluster}: ${apiErrorMessage(err)}`,
          );
        }
        const svc = await client.read<V1Service>({
          apiVersion: "v1",
          kind: "Service",
          metadata: { name: service, namespace: opts.namespace },
        });
        process.stdout.write(`serviceexport/${service} created in ${opts.cluster}/${opts.namespace}\n`);
        if (!svc)
          process.stderr.write(
            `warning: there is no Service ${opts.namespace}/${service} in ${opts.cluster} yet; the export stays Valid=False/NoService until there is\n`,
          );
        const uncarried = portsGatewaysCannotCarry(svc?.spec?.ports ?? []);
        if (uncarried.length > 0)
          process.stderr.write(
            `warning: ${uncarried.join(", ")} of ${opts.namespace}/${service} cannot cross the gateways, which carry TCP and UDP. ${FLAT_MODE_HINT}\n`,
          );
      },
    );

  program
    .command("unexport")
    .description("stop exporting a Service of one cluster (deletes its ServiceExport)")
    .argument("<service>", "Service name")
    .requiredOption("--cluster <name>", "cluster (kubeconfig context)")
    .option("-n, --namespace <ns>", "namespace", "default")
    .option("--kubeconfig <file>")
    .addOption(new Option("--state-dir <dir>").hideHelp())
    .action(
      async (
        service: string,
        opts: { cluster: string; namespace: string; kubeconfig?: string; stateDir?: string },
      ) => {
        const client = clientFor(opts.cluster, opts);
        const existed = await client.deleteIfExists(serviceExportObject(service, opts.namespace));
        if (!existed)
          throw new UserError(`${opts.cluster} has no ServiceExport ${opts.namespace}/${service}`);
        process.stdout.write(`serviceexport/${service} deleted from ${opts.cluster}/${opts.namespace}\n`);
      },
    );
}

export interface ExportSummary {
  cluster: string;
  namespace: string;
  name: string;
  conditions: Record<string, { status: string; reason: string; message: string }>;
}

export interface ImportSummary {
  cluster: string;
  namespace: string;
  name: string;
  type: string;
  ips: string[];
  ports: string[];
  sourceClusters: string[];
}

/** One imported (service, port) as a member's gateway routes it now. */
export interface RoutingSummary {
  cluster: string;
  namespace: string;
  name: string;
  port: number;
  protocol?: "UDP";
  targets: GatewayStatusReport["services"][number]["clusters"];
}

export interface GatewaySummary {
  cluster: string;
  peers: GatewayStatusReport["peers"];
  atLimit?: GatewayStatusReport["atLimit"];
}

/** Exports, imports and gateway routing of each reachable member, for `meridian status`. */
export async function collectServices(clients: ClusterClient[]): Promise<{
  exports: ExportSummary[];
  imports: ImportSummary[];
  routing: RoutingSummary[];
  gateways: GatewaySummary[];
}> {
  const exports: ExportSummary[] = [];
  const imports: ImportSummary[] = [];
  const routing: RoutingSummary[] = [];
  const gateways: GatewaySummary[] = [];
  await Promise.all(
    clients.map(async (c) => {
      try {
        const ex = (await c.objects.list(MCS_API_VERSION, "ServiceExport")) as { items: ServiceExport[] };
        for (const e of ex.items) {
          exports.push({
            cluster: c.name,
            namespace: e.metadata.namespace!,
            name: e.metadata.name!,
            conditions: Object.fromEntries(
              (e.status?.conditions ?? []).map((k) => [
                k.type,
                { status: k.status, reason: k.reason, message: k.message },
              ]),
            ),
          });
        }
        const im = (await c.objects.list(MCS_API_VERSION, "ServiceImport")) as { items: ServiceImport[] };
        for (const i of im.items) {
          imports.push({
            cluster: c.name,
            namespace: i.metadata.namespace!,
            name: i.metadata.name!,
            type: i.spec.type,
            ips: i.spec.ips ?? [],
            ports: i.spec.ports.map((p) => `${p.name ? `${p.name}:` : ""}${p.port}/${p.protocol ?? "TCP"}`),
            sourceClusters: (i.status?.clusters ?? []).map((s) => s.cluster),
          });
        }
        const report = parseGatewayStatus(
          await c.read<V1ConfigMap & KubernetesObject>({
            apiVersion: "v1",
            kind: "ConfigMap",
            metadata: { name: STATUS_CONFIGMAP, namespace: MEMBER_NAMESPACE },
          }),
        );
        if (report) {
          gateways.push({
            cluster: c.name,
            peers: report.peers,
            ...(report.atLimit ? { atLimit: report.atLimit } : {}),
          });
          for (const r of report.services) {
            const [namespace, name] = r.service.split("/") as [string, string];
            routing.push({
              cluster: c.name,
              namespace,
              name,
              port: r.port,
              ...(r.protocol ? { protocol: r.protocol } : {}),
              targets: r.clusters,
            });
          }
        }
      } catch {
        // An unreachable member shows as Down in the cluster list; its services are unknown.
      }
    }),
  );
  const order = (a: { cluster: string; namespace: string; name: string }, b: typeof a) =>
    `${a.namespace}/${a.name}/${a.cluster}`.localeCompare(`${b.namespace}/${b.name}/${b.cluster}`);
  return {
    exports: exports.sort(order),
    imports: imports.sort(order),
    routing: routing.sort((a, b) => order(a, b) || a.port - b.port),
    gateways: gateways.sort((a, b) => a.cluster.localeCompare(b.cluster)),
  };
}
