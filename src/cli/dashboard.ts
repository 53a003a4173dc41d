/**
 * `meridian dashboard`: serves the web dashboard from the hub's state alone. Locally it uses the
 * local clusterset's kubeconfig (context "hub"); in a real install it runs in the hub with the
 * Pod's service account.
 */
import { existsSync } from "node:fs";
import type { Command } from "commander";
import { Option } from "commander";
import { DEFAULT_HUB_NAMESPACE } from "../api/meridian.js";
import { startDashboard } from "../dashboard/server.js";
import { credentialsFromFile, inClusterCredentials } from "../kube/credentials.js";
import { RestClient } from "../kube/rest.js";
import { resolveStateDir, StatePaths, UserError } from "../local/state.js";
import { createLogger } from "../observability/logger.js";
import { parseHostPort } from "../observability/metrics-server.js";

interface DashboardFlags {
  listen: string;
  kubeconfig?: string;
  context: string;
  namespace: string;
  stateDir?: string;
}

async function hubClient(flags: DashboardFlags): Promise<RestClient> {
  const local = new StatePaths(resolveStateDir(flags.stateDir)).kubeconfig;
  const file = flags.kubeconfig ?? (existsSync(local) ? local : undefined);
  if (file) {
    try {
      return new RestClient("hub", await credentialsFromFile(file, flags.context));
    } catch (err) {
      throw new UserError(
        `cannot use kubeconfig ${file} (context ${flags.context}): ${(err as Error).message}`,
      );
    }
  }
  if (process.env["KUBERNETES_SERVICE_HOST"]) return new RestClient("hub", inClusterCredentials());
  throw new UserError(
    "no hub to read: pass --kubeconfig (and --context), run 'meridian up' for a local clusterset, or run in the hub",
  );
}

export function registerDashboardCommand(program: Command): void {
  program
    .command("dashboard")
    .description(
      "serve the web dashboard (read-only): clusters, the export/import graph, services, gateways, DNS",
    )
    .option("--listen <host:port>", "where to serve it", "127.0.0.1:7070")
    .option("--kubeconfig <file>", "kubeconfig of the hub (default: the local clusterset's, else in-cluster)")
    .option("--context <name>", "the hub's context", "hub")
    .option("-n, --namespace <ns>", "the hub namespace holding the Clusters", DEFAULT_HUB_NAMESPACE)
    .addOption(new Option("--state-dir <dir>").hideHelp())
    .action(async (flags: DashboardFlags) => {
      const { host, port } = parseHostPort(flags.listen, "--listen");
      const log = createLogger("dashboard");
      const server = await startDashboard({
        hub: await hubClient(flags),
        namespace: flags.namespace,
        host,
        port,
        log,
      }).catch((err: unknown) => {
        throw new UserError(`cannot serve on ${flags.listen}: ${(err as Error).message}`);
      });
      process.stdout.write(`Meridian dashboard (read-only) at ${server.url}\n`);
      await new Promise<void>((resolve) => {
        process.once("SIGTERM", resolve);
        process.once("SIGINT", resolve);
      });
      await server.close();
    });
}
