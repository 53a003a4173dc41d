/**
 * Commands of Meridian's long-running processes. This module and what it imports at load time stay
 * light (no @kubernetes/client-node), so that `bin/meridian.js` can start a daemon without loading
 * the whole CLI: the controller keeps its memory for its caches.
 */
import { Command } from "commander";
import { DEFAULT_HUB_NAMESPACE } from "../api/meridian.js";
import { registerDnsCommand } from "./dns.js";
import { registerGatewayCommands } from "./gateway.js";

export class DaemonFlagError extends Error {}

export function parseDuration(value: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(value);
  if (!m) throw new DaemonFlagError(`invalid duration "${value}": use e.g. 500ms, 5s or 1m`);
  const n = Number(m[1]);
  return m[2] === "ms" ? n : m[2] === "m" ? n * 60_000 : n * 1000;
}

/** Subcommands `bin/meridian.js` starts through this light module. */
export const DAEMON_COMMANDS = ["controller", "dns", "api-relay", "gateway"];

export function registerDaemonCommands(program: Command): void {
  registerDnsCommand(program);
  registerGatewayCommands(program);
  program
    .command("controller")
    .description("run the mcs-controller against a hub cluster")
    .option("--kubeconfig <file>", "hub kubeconfig (default: in-cluster or $KUBECONFIG)")
    .option("--context <name>", "hub context")
    .option("--namespace <ns>", "hub namespace of Cluster objects", DEFAULT_HUB_NAMESPACE)
    .option("--metrics <host:port>", "serve /metrics, /healthz, /readyz")
    .option("--leader-elect", "elect a leader among replicas through a Lease")
    .option(
      "--unreachable-after <duration>",
      "withdraw an unreachable member's endpoints after this long",
      "5s",
    )
    .option("--refused-namespaces <list>", "namespaces whose exports are refused", "kube-system,kube-public")
    .option("--concurrency <n>", "services reconciled at once", (v) => Number(v), 8)
    .action(
      async (opts: {
        kubeconfig?: string;
        context?: string;
        namespace: string;
        metrics?: string;
        leaderElect?: boolean;
        unreachableAfter: string;
        refusedNamespaces: string;
        concurrency: number;
      }) => {
        const { runController } = await import("../controller/main.js");
        await runController({
          kubeconfig: opts.kubeconfig,
          context: opts.context,
          namespace: opts.namespace,
          metrics: opts.metrics,
          leaderElect: Boolean(opts.leaderElect),
          unreachableAfterMs: parseDuration(opts.unreachableAfter),
          refusedNamespaces: opts.refusedNamespaces.split(",").filter((s) => s.length > 0),
          concurrency: opts.concurrency,
        });
      },
    );
}

/** Runs one daemon command (argv as process.argv). */
export async function runDaemon(argv: string[]): Promise<void> {
  const program = new Command("meridian");
  registerDaemonCommands(program);
  try {
    await program.parseAsync(argv);
  } catch (err) {
    process.stderr.write(`error: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  }
}
