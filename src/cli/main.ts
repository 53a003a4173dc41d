/** The `meridian` command line. */
import { spawn } from "node:child_process";
import { mkdirSync, openSync, closeSync } from "node:fs";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Command, Option } from "commander";
import { down, status, up, type ClustersetStatus } from "../local/clusterset.js";
import { execInMember, parseLabels, startPod } from "../local/pods.js";
import { resolveStateDir, StatePaths, UserError } from "../local/state.js";
import { ClusterClient, isNotFound } from "../kube/client.js";
import { isAlive } from "../local/processes.js";
import { parseOutputFormat, renderStructured, renderTable } from "./output.js";
import {
  collectServices,
  registerMcsCommands,
  type ExportSummary,
  type GatewaySummary,
  type ImportSummary,
  type RoutingSummary,
} from "./mcs.js";
import { registerDaemonCommands } from "./daemons.js";
import { portLabel } from "../gateway/kube-status.js";
import { registerExplainCommand } from "./explain.js";
import { registerDashboardCommand } from "./dashboard.js";

const stateDirOption = () =>
  new Option(
    "--state-dir <dir>",
    "where the local clusterset keeps its state (env MERIDIAN_STATE_DIR; default ./.meridian)",
  );

function print(text: string): void {
  process.stdout.write(text);
}

function statusTable(s: ClustersetStatus): string {
  return renderTable(
    ["CLUSTER", "ROLE", "HEALTH", "SERVER", "POD-CIDR", "GATEWAY", "NETWORK"],
    s.clusters.map((c) => [
      c.name,
      c.role,
      c.health,
      c.server,
      c.network?.podCIDR ?? "-",
      c.network?.gatewayAddress ?? "-",
      c.network?.namespace ?? "-",
    ]),
  );
}

function conditionCell(e: ExportSummary, type: string): string {
  const c = e.conditions[type];
  return c
    ? `${c.status}${c.status === (type === "Conflict" ? "False" : "True") ? "" : `/${c.reason}`}`
    : "-";
}

function routingCell(targets: RoutingSummary["targets"]): string {
  if (targets.length === 0) return "no cluster has ready endpoints";
  return targets
    .map(
      (t) =>
        `${t.clusterId} ${t.sharePercent}%${t.usable ? "" : " (down)"}${t.tier > 0 ? ` [tier ${t.tier}]` : ""}`,
    )
    .join(", ");
}

/** Which limits a gateway has just refused new connections at, by direction; "-" when none. */
function atLimitCell(atLimit: GatewaySummary["atLimit"]): string {
  const parts = [
    ...(atLimit?.outbound ? [`outbound: ${atLimit.outbound}`] : []),
    ...(atLimit?.inbound ? [`inbound: ${atLimit.inbound}`] : []),
  ];
  return parts.join(", ") || "-";
}

export function servicesTables(
  exports: ExportSummary[],
  imports: ImportSummary[],
  routing: RoutingSummary[],
  gateways: GatewaySummary[],
): string {
  let out = "";
  if (exports.length > 0) {
    out += "\nEXPORTS\n";
    out += renderTable(
      ["CLUSTER", "SERVICE", "VALID", "READY", "CONFLICT"],
      exports.map((e) => [
        e.cluster,
        `${e.namespace}/${e.name}`,
        conditionCell(e, "Valid"),
        conditionCell(e, "Ready"),
        conditionCell(e, "Conflict"),
      ]),
    );
  }
  if (imports.length > 0) {
    out += "\nIMPORTS\n";
    out += renderTable(
      ["CLUSTER", "SERVICE", "TYPE", "IPS", "PORTS", "FROM"],
      imports.map((i) => [
        i.cluster,
        `${i.namespace}/${i.name}`,
        i.type,
        i.ips.join(",") || "-",
        i.ports.join(","),
        i.sourceClusters.join(",") || "-",
      ]),
    );
  }
  if (routing.length > 0) {
    out += "\nROUTING (new connections, by each member's gateway)\n";
    out += renderTable(
      ["CLUSTER", "SERVICE", "PORT", "TO"],
      routing.map((r) => [r.cluster, `${r.namespace}/${r.name}`, portLabel(r), routingCell(r.targets)]),
    );
  }
  if (gateways.length > 0) {
    out += "\nGATEWAYS\n";
    out += renderTable(
      ["CLUSTER", "PEERS", "REFUSING AT LIMIT"],
      gateways.map((g) => [
        g.cluster,
        g.peers.map((p) => `${p.clusterId} ${p.available ? "up" : `down (${p.probe})`}`).join(", ") || "-",
        atLimitCell(g.atLimit),
      ]),
    );
  }
  return out;
}

export function buildProgram(): Command {
  const program = new Command("meridian")
    .description("Multi-cluster services for Kubernetes: one service across many clusters")
    .showHelpAfterError()
    .configureOutput({ outputError: (str, write) => write(str) });

  program
    .command("up")
    .description("start (or resume) a local clusterset: a hub and member clusters on one machine")
    .addOption(stateDirOption())
    .option("--members <n>", "number of member clusters (new clustersets only)", (v) => Number(v))
    .option("--overlapping-pod-cidrs", "give every member the same pod CIDR (they stay separate networks)")
    .option("--components <list>", "Meridian components to run, comma-separated (default: all)", (v) =>
      v.split(",").filter((x) => x.length > 0),
    )
    .action(
      async (opts: {
        stateDir?: string;
        members?: number;
        overlappingPodCidrs?: boolean;
        components?: string[];
      }) => {
        const stateDir = resolveStateDir(opts.stateDir);
        const result = await up({
          stateDir,
          members: opts.members,
          overlappingPodCIDRs: opts.overlappingPodCidrs,
          components: opts.components,
          log: (line) => process.stderr.write(`${line}\n`),
        });
        const s = await status(stateDir);
        print(
          `\n${result.resumed ? "Resumed" : "Started"} the clusterset in ${result.seconds.toFixed(1)}s.\n\n`,
        );
        print(statusTable(s));
        const member = s.clusters.find((c) => c.role === "member")?.name ?? "west";
        print(
          `\nUse it:\n` +
            `  export KUBECONFIG=${s.kubeconfig}     # one context per cluster\n` +
            `  kubectl --context ${member} get nodes\n` +
            `  meridian run ${member} --labels app=web -- python3 -m http.server 8080   # a process as a pod\n` +
            `  meridian exec ${member} -- ip addr                                       # inside ${member}'s network\n` +
            `  meridian status\n` +
            `  meridian down\n`,
        );
      },
    );

  program
    .command("down")
    .description("stop everything the local clusterset started and remove its networks")
    .addOption(stateDirOption())
    .option("--purge", "also delete the state dir (data, certificates, kubeconfig)")
    .action(async (opts: { stateDir?: string; purge?: boolean }) => {
      const stateDir = resolveStateDir(opts.stateDir);
      const result = await down(stateDir, Boolean(opts.purge));
      if (result.stopped.length === 0 && result.namespacesRemoved === 0) {
        print(`nothing was running in ${stateDir}\n`);
      } else {
        print(
          `stopped ${result.stopped.length} processes and removed ${result.namespacesRemoved} network namespaces\n`,
        );
      }
      if (result.purged) print(`deleted ${stateDir}\n`);
    });

  program
    .command("status")
    .description("show the clusters of the local clusterset, their health, exports and imports")
    .addOption(stateDirOption())
    .addOption(new Option("-o, --output <format>", "table, json or yaml").default("table"))
    .action(async (opts: { stateDir?: string; output: string }) => {
      const format = parseOutputFormat(opts.output);
      const stateDir = resolveStateDir(opts.stateDir);
      const s = await status(stateDir);
      const paths = new StatePaths(stateDir);
      const reachable = s.clusters.filter(
        (c) => c.role === "member" && (c.health === "Ready" || c.health === "Degraded"),
      );
      const services = await collectServices(
        reachable.map((c) => ClusterClient.fromFile(paths.kubeconfig, c.name)),
      );
      const full = { ...s, ...services };
      print(
        format === "table"
          ? statusTable(s) +
              servicesTables(services.exports, services.imports, services.routing, services.gateways)
          : renderStructured(full, format),
      );
      if (s.clusters.some((c) => c.health !== "Ready")) process.exitCode = 3;
    });

  program
    .command("run")
    .description("run a local process as a pod of a member cluster")
    .argument("<cluster>", "member cluster to run in")
    .argument("<command...>", "the command, after --")
    .addOption(stateDirOption())
    .option("-n, --namespace <ns>", "namespace of the pod", "default")
    .option("--labels <k=v,...>", "pod labels")
    .option("--name <name>", "pod name (default: from the command)")
    .option("--create-namespace", "create the namespace if it does not exist")
    .option(
      "--ready-port <port>",
      "be Ready only once this TCP port accepts connections (a readiness probe)",
      (v) => Number(v),
    )
    .option("-d, --detach", "run in the background; stop it with 'kubectl delete pod' or 'meridian down'")
    .action(
      async (
        cluster: string,
        command: string[],
        opts: {
          stateDir?: string;
          namespace: string;
          labels?: string;
          name?: string;
          createNamespace?: boolean;
          detach?: boolean;
          readyPort?: number;
        },
      ) => {
        const stateDir = resolveStateDir(opts.stateDir);
        const labels = parseLabels(opts.labels);
        if (
          opts.readyPort !== undefined &&
          !(Number.isInteger(opts.readyPort) && opts.readyPort > 0 && opts.readyPort < 65536)
        ) {
          throw new UserError(`--ready-port must be a TCP port number from 1 to 65535`);
        }
        if (opts.detach) {
          await runDetached(stateDir, cluster, opts.namespace, opts.name, command);
          return;
        }
        const pod = await startPod({
          stateDir,
          cluster,
          namespace: opts.namespace,
          name: opts.name,
          labels,
          command,
          createNamespace: opts.createNamespace,
          readyPort: opts.readyPort,
        });
        process.stderr.write(
          `pod ${pod.record.namespace}/${pod.record.name} running in ${cluster} at ${pod.record.ip}\n`,
        );
        const forward = () => void pod.stop();
        process.once("SIGINT", forward);
        process.once("SIGTERM", forward);
        process.exitCode = await pod.finished;
      },
    );

  program
    .command("exec")
    .description("run a command inside a member cluster's network")
    .argument("<cluster>", "member cluster")
    .argument("<command...>", "the command, after --")
    .addOption(stateDirOption())
    .action(async (cluster: string, command: string[], opts: { stateDir?: string }) => {
      process.exitCode = await execInMember(resolveStateDir(opts.stateDir), cluster, command);
    });

  program
    .command("whereami")
    .description(
      "answer HTTP, and UDP datagrams on the same port number, naming the cluster and pod that answered (a demo workload)",
    )
    .option("--port <port>", "port to listen on", (v) => Number(v), 8080)
    .action(async (opts: { port: number }) => {
      const { startWhereami } = await import("../demo/whereami.js");
      const server = await startWhereami(opts.port);
      process.stderr.write(
        `whereami listening on :${opts.port} (TCP: HTTP; UDP: a datagram answers each datagram)\n`,
      );
      await new Promise<void>((resolve) => {
        process.once("SIGTERM", resolve);
        process.once("SIGINT", resolve);
      });
      await server.close();
    });

  registerMcsCommands(program);
  registerExplainCommand(program);
  registerDashboardCommand(program);
  registerDaemonCommands(program);

  return program;
}

/**
 * Re-runs this same `run` command without --detach as a background supervisor, and returns once
 * its pod is Ready (or the supervisor has failed, with its log).
 */
async function runDetached(
  stateDir: string,
  cluster: string,
  namespace: string,
  name: string | undefined,
  command: string[],
): Promise<void> {
  const paths = new StatePaths(stateDir);
  const podName = name ?? (await import("../local/pods.js")).defaultPodName(command);
  const argv = process.argv.slice(2).filter((a) => a !== "-d" && a !== "--detach");
  const dashes = argv.indexOf("--");
  const withName = name
    ? argv
    : [
        ...argv.slice(0, dashes < 0 ? argv.length : dashes),
        "--name",
        podName,
        ...(dashes < 0 ? [] : argv.slice(dashes)),
      ];
  const logFile = path.join(paths.logs, "pods", `${cluster}-${namespace}-${podName}.log`);
  mkdirSync(path.dirname(logFile), { recursive: true });
  const fd = openSync(logFile, "a");
  const child = spawn(process.execPath, [...process.execArgv, process.argv[1]!, ...withName], {
    detached: true,
    stdio: ["ignore", fd, fd],
    env: { ...process.env, MERIDIAN_STATE_DIR: stateDir },
  });
  closeSync(fd);
  child.unref();
  const supervisor = { pid: child.pid!, executable: process.argv[1]!, startedAt: new Date().toISOString() };
  const client = ClusterClient.fromFile(paths.kubeconfig, cluster);
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    try {
      const pod = await client.core.readNamespacedPod({ name: podName, namespace });
      if (pod.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True")) {
        print(`pod/${podName} running in ${cluster} at ${pod.status.podIP ?? "?"} (log: ${logFile})\n`);
        return;
      }
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    if (!isAlive(supervisor)) {
      const { tail } = await import("../local/controlplane.js");
      throw new UserError(
        `the pod supervisor exited before ${namespace}/${podName} became ready:\n${tail(logFile, 10)}`,
      );
    }
    await sleep(100);
  }
  throw new UserError(`${namespace}/${podName} did not become ready within 30s; see ${logFile}`);
}

export async function main(argv: string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (err) {
    if (err instanceof UserError) {
      process.stderr.write(`error: ${err.message}\n`);
      process.exitCode = err.exitCode;
      return;
    }
    process.stderr.write(`error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  }
}
