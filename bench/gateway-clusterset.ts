/**
 * Stages bench/gateway.ts on a local clusterset: a private two-member clusterset (west, east)
 * from `meridian up`, with its own gateways, DNS and controller, and the benchmark's backends as
 * pods. The measuring half of the benchmark then runs in west's node network, so that:
 *
 *   client (west node) ──▶ west's gateway (ClusterSetIP) ──mTLS over the shared network──▶
 *     east's gateway ──east's pod bridge──▶ backend pod in east
 *
 * is the exact path a workload's connection takes, through the gateways `meridian up` runs (their
 * V8 flags, routes from the ServiceImport, access control, metrics). The HAProxy pair takes the
 * same places: A in west's node network, B on east's address on the shared network, forwarding to
 * the same backend pod. The direct baseline is a second backend pod in west, reached over west's
 * pod bridge (members share no pod network, so nothing reaches east's pod directly from west).
 */
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { KubernetesObject } from "@kubernetes/client-node";
import { MCS_API_VERSION, type ServiceImport } from "../src/api/mcs.js";
import { ClusterClient } from "../src/kube/client.js";
import { down, up } from "../src/local/clusterset.js";
import { gatewayProcessName } from "../src/local/gateway.js";
import { captureInMember, listPods } from "../src/local/pods.js";
import { inNamespace } from "../src/local/network.js";
import { readProcessRecord } from "../src/local/processes.js";
import { readClusterset, StatePaths } from "../src/local/state.js";

/** The ports the backend pods listen on (and the exported Service's ports). */
export const BACKEND_PORTS = { iperf: 5201, http: 8080, echo: 7007, sockperf: 11111 } as const;

/** What the measuring half needs to know of the staged clusterset. */
export interface ClustersetTopology {
  /** West's node network namespace: the client side, and HAProxy A. */
  westNamespace: string;
  westNodeAddress: string;
  /** East's node network namespace and its address on the shared network: HAProxy B. */
  eastNamespace: string;
  eastGatewayAddress: string;
  /** The exported service's ClusterSetIP in west (served by west's gateway). */
  clusterSetIP: string;
  /** The backend pod in east (behind the exported service) and the direct-baseline pod in west. */
  eastBackend: string;
  westBackend: string;
  /** West's gateway, then east's. */
  gatewayPids: number[];
}

const NAMESPACE = "gwbench";
const SERVICE = "backend";

/** Finds `check`'s first defined value, polling; throws naming `what` after `timeoutMs`. */
async function until<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000}s waiting for ${what}`);
    await sleep(250);
  }
}

/**
 * The backends in one pod: iperf3 (a one-off server per test, restarted in a loop: a long-lived one
 * can be upset by a half-open connection), sockperf, and bench/gateway-backend.ts (echo, HTTP).
 */
function backendCommand(repo: string): string {
  const p = BACKEND_PORTS;
  return [
    `sockperf server --tcp -i 0.0.0.0 -p ${p.sockperf} >/dev/null 2>&1 &`,
    `while :; do iperf3 -s -1 -p ${p.iperf} >/dev/null 2>&1; done &`,
    `cd ${repo} && exec ${process.execPath} --import tsx bench/gateway-backend.ts`,
    `--host 0.0.0.0 --echo ${p.echo} --http ${p.http}`,
  ].join(" ");
}

function runBackendPod(repo: string, stateDir: string, cluster: string, name: string): void {
  const res = spawnSync(
    process.execPath,
    [
      path.join(repo, "bin/meridian.js"),
      "run",
      cluster,
      "-n",
      NAMESPACE,
      "--labels",
      `app=${name}`,
      "--name",
      name,
      "--ready-port",
      String(BACKEND_PORTS.http),
      "--detach",
      "--",
      "sh",
      "-c",
      backendCommand(repo),
    ],
    { cwd: repo, encoding: "utf8", env: { ...process.env, MERIDIAN_STATE_DIR: stateDir }, timeout: 120_000 },
  );
  if (res.status !== 0) throw new Error(`meridian run ${cluster} ${name} failed: ${res.stderr || res.error}`);
}

/** Every process in a network namespace gets SIGKILL (a pod's shell leaves its servers behind). */
function killNamespace(ns: string): void {
  const pids = spawnSync("ip", ["netns", "pids", ns], { encoding: "utf8" })
    .stdout.split(/\s+/)
    .filter(Boolean);
  for (const pid of pids) {
    try {
      process.kill(Number(pid), "SIGKILL");
    } catch {
      // already gone
    }
  }
}

export interface StagedClusterset {
  topologyFile: string;
  topology: ClustersetTopology;
  teardown(): Promise<void>;
}

export async function stageClusterset(repo: string, log: (line: string) => void): Promise<StagedClusterset> {
  const stateDir = mkdtempSync(path.join(os.tmpdir(), "meridian-bench-gw-cs-"));
  const paths = new StatePaths(stateDir);
  const teardown = async (): Promise<void> => {
    for (const pod of listPods(paths)) killNamespace(pod.podNamespace);
    await down(stateDir, true);
    rmSync(stateDir, { recursive: true, force: true });
  };
  try {
    log(`starting a private clusterset (west, east) in ${stateDir}`);
    await up({ stateDir, members: 2 });
    const record = readClusterset(paths)!;
    const member = (name: string) => {
      const network = record.clusters.find((c) => c.name === name)?.network;
      if (!network) throw new Error(`the clusterset in ${stateDir} has no member ${name}`);
      return network;
    };
    const west = member("west");
    const east = member("east");
    // Room for the connection phases' TIME_WAIT sockets in the private clusterset's networks.
    for (const ns of [west.nodeNamespace, east.nodeNamespace]) {
      const [exe, ...args] = inNamespace(ns, ["sysctl", "-qw", "net.ipv4.ip_local_port_range=1024 65535"]);
      execFileSync(exe!, args);
    }

    const client = (name: string) => ClusterClient.fromFile(paths.kubeconfig, name);
    for (const name of ["west", "east"])
      await client(name).core.createNamespace({ body: { metadata: { name: NAMESPACE } } });
    await client("east").core.createNamespacedService({
      namespace: NAMESPACE,
      body: {
        metadata: { name: SERVICE },
        spec: {
          selector: { app: SERVICE },
          ports: Object.entries(BACKEND_PORTS).map(([name, port]) => ({ name, port, protocol: "TCP" })),
        },
      },
    });
    log("starting backend pods in east (exported) and west (direct baseline)");
    runBackendPod(repo, stateDir, "east", SERVICE);
    runBackendPod(repo, stateDir, "west", `${SERVICE}-direct`);
    await client("east").apply({
      apiVersion: MCS_API_VERSION,
      kind: "ServiceExport",
      metadata: { name: SERVICE, namespace: NAMESPACE },
    });
    const clusterSetIP = await until("the ServiceImport's ClusterSetIP in west", async () => {
      const imp = await client("west").read<ServiceImport & KubernetesObject>({
        apiVersion: MCS_API_VERSION,
        kind: "ServiceImport",
        metadata: { name: SERVICE, namespace: NAMESPACE },
      });
      return imp?.spec.ips?.[0];
    });
    await until("an answer from east's backend through both gateways", async () => {
      const res = await captureInMember(stateDir, "west", [
        "curl",
        "-s",
        "-m",
        "2",
        `http://${clusterSetIP}:${BACKEND_PORTS.http}/`,
      ]);
      return res.stdout === "ok" ? true : undefined;
    });
    const pods = listPods(paths);
    const podIP = (cluster: string): string => {
      const pod = pods.find((p) => p.cluster === cluster && p.namespace === NAMESPACE);
      if (!pod) throw new Error(`no backend pod recorded in ${cluster}`);
      return pod.ip;
    };
    const gatewayPid = (cluster: string): number => {
      const rec = readProcessRecord(paths.pidFile(gatewayProcessName(cluster)));
      if (!rec) throw new Error(`no gateway process recorded for ${cluster}`);
      return rec.pid;
    };
    const topology: ClustersetTopology = {
      westNamespace: west.nodeNamespace,
      westNodeAddress: west.nodeAddress,
      eastNamespace: east.nodeNamespace,
      eastGatewayAddress: east.gatewayAddress,
      clusterSetIP,
      eastBackend: podIP("east"),
      westBackend: podIP("west"),
      gatewayPids: [gatewayPid("west"), gatewayPid("east")],
    };
    const topologyFile = path.join(stateDir, "bench-topology.json");
    writeFileSync(topologyFile, JSON.stringify(topology, null, 2));
    return { topologyFile, topology, teardown };
  } catch (err) {
    await teardown().catch(() => {});
    throw err;
  }
}
