/** The controller process: hub client, leader election, metrics endpoint, the Controller. */
import os from "node:os";
import { credentialsFromFile, inClusterCredentials, type ClusterCredentials } from "../kube/credentials.js";
import { collectDefaultMetrics, Gauge, Registry } from "prom-client";
import { LeaderElector } from "../kube/leader.js";
import { RestClient } from "../kube/rest.js";
import { createLogger } from "../observability/logger.js";
import { parseHostPort, startMetricsServer } from "../observability/metrics-server.js";
import { Controller } from "./controller.js";
import { errorText } from "../kube/member-credentials.js";
import { registryTotals, statsPublisher } from "../observability/stats-report.js";

export interface ControllerProcessOptions {
  kubeconfig?: string;
  context?: string;
  namespace: string;
  metrics?: string;
  leaderElect: boolean;
  unreachableAfterMs: number;
  refusedNamespaces: string[];
  concurrency: number;
}

async function hubCredentials(opts: ControllerProcessOptions): Promise<ClusterCredentials> {
  if (opts.kubeconfig) return credentialsFromFile(opts.kubeconfig, opts.context);
  if (process.env["KUBERNETES_SERVICE_HOST"]) return inClusterCredentials();
  const fallback = process.env["KUBECONFIG"] ?? `${process.env["HOME"] ?? ""}/.kube/config`;
  return credentialsFromFile(fallback, opts.context);
}

export async function runController(opts: ControllerProcessOptions): Promise<void> {
  const log = createLogger("controller");
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const leaderGauge = new Gauge({
    name: "meridian_controller_leader",
    help: "1 while this replica leads.",
    registers: [registry],
  });
  const hub = new RestClient("hub", await hubCredentials(opts));
  const controller = new Controller({
    hub,
    namespace: opts.namespace,
    log,
    registry,
    unreachableAfterMs: opts.unreachableAfterMs,
    refusedNamespaces: opts.refusedNamespaces,
    concurrency: opts.concurrency,
  });
  let leading = false;
  if (opts.metrics) {
    const { host, port } = parseHostPort(opts.metrics, "--metrics");
    const server = await startMetricsServer(registry, host, port, () => leading || !opts.leaderElect);
    log.info({ port: server.port }, "serving /metrics");
  }
  const lead = async (): Promise<void> => {
    leading = true;
    leaderGauge.set(1);
    log.info("leading: starting the controller");
    try {
      await controller.start();
    } catch (err) {
      log.fatal({ err: errorText(err) }, "controller failed to start");
      process.exit(1);
    }
    stats.start();
  };
  // What the dashboard shows of the controller, in the hub: reconciles and propagation times.
  const stats = statsPublisher(
    hub,
    opts.namespace,
    "controller",
    async () => ({
      counters: await registryTotals(registry, [
        { metric: "meridian_controller_reconcile_total", short: "reconciles", by: "result" },
      ]),
      propagation: controller.propagationReport(),
    }),
    (err) => log.warn({ err: errorText(err) }, "could not publish the controller's stats"),
    5000,
  );
  let elector: LeaderElector | undefined;
  if (opts.leaderElect) {
    elector = new LeaderElector(hub, {
      namespace: opts.namespace,
      name: "meridian-controller",
      identity: `${os.hostname()}-${process.pid}`,
      onStartedLeading: () => void lead(),
      // Without fencing, a replica that lost the lease must stop writing at once.
      onLost: () => {
        log.fatal("lost leadership; exiting");
        process.exit(2);
      },
      log: (m) => log.warn(m),
    });
    elector.start();
  } else {
    await lead();
  }
  await new Promise<void>((resolve) => {
    process.once("SIGTERM", resolve);
    process.once("SIGINT", resolve);
  });
  log.info("shutting down");
  await elector?.stop();
  stats.stop();
  await controller.stop();
  process.exit(0);
}
