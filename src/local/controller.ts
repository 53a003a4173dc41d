/**
 * The mcs-controller of a local clusterset: one process in the host namespace against the hub,
 * with every member joined through `meridian join`'s code path (so `up` exercises exactly what a
 * user runs against real clusters).
 */
import { GATEWAY_PEER_PORT } from "./gateway.js";
import { existsSync, readFileSync } from "node:fs";
import net from "node:net";
import type { KubernetesObject } from "@kubernetes/client-node";
import { CLUSTER_API_VERSION, DEFAULT_HUB_NAMESPACE } from "../api/meridian.js";
import { ClusterClient } from "../kube/client.js";
import { join } from "../membership/join.js";
import { writeSecretFile } from "../pki/openssl.js";
import { meridianCommand, registerLocalComponent, startComponentProcess } from "./components.js";
import type { StatePaths } from "./state.js";

export const CONTROLLER_PROCESS = "hub-controller";

function metricsPortFile(paths: StatePaths): string {
  return `${paths.clusterDir("hub")}/controller-metrics.port`;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export function controllerMetricsAddress(paths: StatePaths): string | undefined {
  const f = metricsPortFile(paths);
  return existsSync(f) ? `127.0.0.1:${readFileSync(f, "utf8").trim()}` : undefined;
}

registerLocalComponent({
  name: "controller",
  async ensure(ctx) {
    // The controller starts first: it picks up each Cluster as its join registers it, so its
    // start-up overlaps the joins instead of following them.
    let address = controllerMetricsAddress(ctx.paths);
    if (!address) {
      const port = await freePort();
      writeSecretFile(metricsPortFile(ctx.paths), String(port));
      address = `127.0.0.1:${port}`;
    }
    const hub = ClusterClient.fromFile(ctx.paths.kubeconfig, "hub");
    // The hub namespace holds the Clusters and their credentials. One replica runs here, without
    // leader election: a replica that loses its Lease exits (it must stop writing), and in the
    // local clusterset nothing would restart it, e.g. after a CPU-starved renewal.
    await hub.apply({ apiVersion: "v1", kind: "Namespace", metadata: { name: DEFAULT_HUB_NAMESPACE } });
    startComponentProcess(ctx, {
      name: CONTROLLER_PROCESS,
      argv: meridianCommand(
        "controller",
        "--kubeconfig",
        ctx.paths.kubeconfig,
        "--context",
        "hub",
        "--metrics",
        address,
      ),
    });
    const members = ctx.record.clusters.filter((c) => c.role === "member");
    await Promise.all(
      members.map(async (c) => {
        const registered = await hub.read<KubernetesObject>({
          apiVersion: CLUSTER_API_VERSION,
          kind: "Cluster",
          metadata: { name: c.name, namespace: DEFAULT_HUB_NAMESPACE },
        });
        if (registered) return;
        await join({
          name: c.name,
          clustersetName: `local-${ctx.record.id}`,
          member: ClusterClient.fromFile(ctx.paths.kubeconfig, c.name),
          hub,
          region: "local",
          zone: `local-${c.name}`,
          ...(c.network ? { gatewayAddresses: [`${c.network.gatewayAddress}:${GATEWAY_PEER_PORT}`] } : {}),
        });
        ctx.log(`${c.name}: joined the clusterset`);
      }),
    );
  },
  describe(ctx, cluster) {
    if (cluster.role !== "hub") return undefined;
    return { metrics: controllerMetricsAddress(ctx.paths) ?? null };
  },
});
