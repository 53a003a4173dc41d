/**
 * Local processes as pods of a member. Each process gets its own network namespace with an address
 * from the member's pod CIDR, and a Pod object on the member's Node that is Running and Ready while
 * the process lives. The real endpointslice controller then publishes it behind any Service that
 * selects it. Deleting the Pod stops the process; the process exiting removes the Pod.
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import path from "node:path";
import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import type { V1Pod } from "@kubernetes/client-node";
import { ClusterClient, MERGE_PATCH, apiErrorMessage, isNotFound } from "../kube/client.js";
import {
  addressInCIDR,
  createPodNetwork,
  deleteNamespace,
  inNamespace,
  prefixLength,
  requireNetworkPrivileges,
} from "./network.js";
import { isAlive, stopProcess, type ProcessRecord } from "./processes.js";
import { useMemberDns } from "./dns.js";
import {
  findCluster,
  readClusterset,
  StatePaths,
  UserError,
  type ClusterRecord,
  type ClustersetRecord,
} from "./state.js";

export interface RunOptions {
  stateDir: string;
  cluster: string;
  namespace: string;
  name?: string;
  labels: Record<string, string>;
  command: string[];
  createNamespace?: boolean;
  /** Ready only once this TCP port accepts connections in the pod (a readiness probe). */
  readyPort?: number;
}

export interface PodRecord {
  cluster: string;
  namespace: string;
  name: string;
  ip: string;
  podNamespace: string;
  hostInterface: string;
  supervisor: ProcessRecord;
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

export function parseLabels(spec: string | undefined): Record<string, string> {
  const labels: Record<string, string> = {};
  if (!spec) return labels;
  for (const pair of spec.split(",").filter((p) => p.length > 0)) {
    const eq = pair.indexOf("=");
    const key = eq > 0 ? pair.slice(0, eq) : "";
    const value = eq > 0 ? pair.slice(eq + 1) : "";
    if (!/^([a-z0-9.-]+\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/.test(key) || key.length > 316) {
      throw new UserError(
        `invalid label "${pair}": use key=value pairs separated by commas, e.g. app=web,tier=front`,
      );
    }
    if (!/^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/.test(value) || value.length > 63) {
      throw new UserError(`invalid label value in "${pair}": up to 63 letters, digits, '-', '_' or '.'`);
    }
    labels[key] = value;
  }
  return labels;
}

export function defaultPodName(command: string[]): string {
  const base = path
    .basename(command[0] ?? "process")
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 40);
  return `${base || "process"}-${randomBytes(3).toString("hex").slice(0, 5)}`;
}

function podsDir(paths: StatePaths, cluster: string): string {
  return path.join(paths.pods, cluster);
}

function readPodRecords(paths: StatePaths): { file: string; record: PodRecord }[] {
  if (!existsSync(paths.pods)) return [];
  const out: { file: string; record: PodRecord }[] = [];
  for (const cluster of readdirSync(paths.pods)) {
    for (const f of readdirSync(path.join(paths.pods, cluster))) {
      const file = path.join(paths.pods, cluster, f);
      try {
        out.push({ file, record: JSON.parse(readFileSync(file, "utf8")) as PodRecord });
      } catch {
        // a claim being written right now
      }
    }
  }
  return out;
}

/** Claims the lowest free pod address by creating its record file exclusively. */
function claimAddress(
  paths: StatePaths,
  cluster: ClusterRecord,
): { ip: string; offset: number; file: string } {
  const net = cluster.network!;
  const dir = podsDir(paths, cluster.name);
  mkdirSync(dir, { recursive: true });
  const size = 2 ** (32 - prefixLength(net.podCIDR));
  for (let offset = 10; offset < size - 1; offset++) {
    const ip = addressInCIDR(net.podCIDR, offset);
    const file = path.join(dir, `${ip}.json`);
    if (existsSync(file)) {
      try {
        const rec = JSON.parse(readFileSync(file, "utf8")) as PodRecord;
        if (isAlive(rec.supervisor)) continue;
      } catch {
        continue;
      }
      rmSync(file, { force: true });
    }
    try {
      closeSync(openSync(file, "wx"));
      return { ip, offset, file };
    } catch {
      continue;
    }
  }
  throw new UserError(`no free pod address left in ${net.podCIDR} of ${cluster.name}`);
}

function podObject(opts: RunOptions, name: string, node: string): V1Pod {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name,
      namespace: opts.namespace,
      labels: opts.labels,
      annotations: { "meridian.dev/local-process": opts.command.join(" ").slice(0, 1000) },
    },
    spec: {
      nodeName: node,
      restartPolicy: "Never",
      terminationGracePeriodSeconds: 5,
      containers: [{ name: "main", image: "meridian.local/process", command: opts.command }],
    },
  };
}

async function markRunning(
  client: ClusterClient,
  pod: V1Pod,
  ip: string,
  hostIP: string,
  ready: boolean,
): Promise<void> {
  const now = new Date();
  const condition = (type: string) => ({
    type,
    status: ready || type === "PodScheduled" || type === "Initialized" ? "True" : "False",
    lastTransitionTime: now,
  });
  await client.core.patchNamespacedPodStatus(
    {
      name: pod.metadata!.name!,
      namespace: pod.metadata!.namespace!,
      body: {
        status: {
          phase: "Running",
          podIP: ip,
          podIPs: [{ ip }],
          hostIP,
          hostIPs: [{ ip: hostIP }],
          startTime: now,
          conditions: ["PodScheduled", "Initialized", "ContainersReady", "Ready"].map(condition),
          containerStatuses: [
            {
              name: "main",
              image: "meridian.local/process",
              imageID: "",
              ready,
              started: true,
              restartCount: 0,
              state: { running: { startedAt: now } },
            },
          ],
        },
      },
    },
    MERGE_PATCH,
  );
}

async function markFinished(client: ClusterClient, pod: V1Pod, exitCode: number): Promise<void> {
  const now = new Date();
  await client.core.patchNamespacedPodStatus(
    {
      name: pod.metadata!.name!,
      namespace: pod.metadata!.namespace!,
      body: {
        status: {
          phase: exitCode === 0 ? "Succeeded" : "Failed",
          conditions: [
            { type: "Ready", status: "False", reason: "PodCompleted", lastTransitionTime: now },
            { type: "ContainersReady", status: "False", reason: "PodCompleted", lastTransitionTime: now },
          ],
          containerStatuses: [
            {
              name: "main",
              image: "meridian.local/process",
              imageID: "",
              ready: false,
              started: false,
              restartCount: 0,
              state: {
                terminated: { exitCode, finishedAt: now, reason: exitCode === 0 ? "Completed" : "Error" },
              },
            },
          ],
        },
      },
    },
    MERGE_PATCH,
  );
}

function loadMember(
  stateDir: string,
  clusterName: string,
): { paths: StatePaths; record: ClustersetRecord; cluster: ClusterRecord } {
  const paths = new StatePaths(stateDir);
  const record = readClusterset(paths);
  if (!record) throw new UserError(`no clusterset in ${paths.dir}; start one with 'meridian up'`);
  const cluster = findCluster(record, clusterName);
  if (!cluster.network) {
    throw new UserError(
      `${clusterName} is the hub; it runs no workloads. Run processes in a member: ${record.clusters
        .filter((c) => c.network)
        .map((c) => c.name)
        .join(", ")}`,
    );
  }
  return { paths, record, cluster };
}

export interface RunningPod {
  record: PodRecord;
  /** Resolves with the process's exit code once it has exited and everything is cleaned up. */
  finished: Promise<number>;
  /** Stops the process (SIGTERM) and waits for the clean-up. */
  stop(): Promise<number>;
}

/**
 * Starts `opts.command` as a pod and supervises it from this process. Output goes to this
 * process's stdio; the returned promise settles once the pod is Running and Ready.
 */
export async function startPod(opts: RunOptions): Promise<RunningPod> {
  requireNetworkPrivileges("meridian run");
  if (opts.command.length === 0) throw new UserError("nothing to run: give a command after '--'");
  const { paths, record, cluster } = loadMember(opts.stateDir, opts.cluster);
  const name = opts.name ?? defaultPodName(opts.command);
  if (!DNS_LABEL.test(name) || name.length > 63) {
    throw new UserError(
      `invalid pod name "${name}": lower-case letters, digits and '-', at most 63 characters`,
    );
  }
  const client = ClusterClient.fromFile(paths.kubeconfig, cluster.name);
  await ensureNamespace(client, opts);
  const claim = claimAddress(paths, cluster);
  const net = cluster.network!;
  const podRecord: PodRecord = {
    cluster: cluster.name,
    namespace: opts.namespace,
    name,
    ip: claim.ip,
    podNamespace: `mrd-${record.id}-${cluster.name}-p${claim.offset}`,
    hostInterface: `p${claim.offset}`,
    supervisor: {
      pid: process.pid,
      executable: process.argv[1] ?? process.execPath,
      startedAt: new Date().toISOString(),
    },
  };
  writeFileSync(claim.file, JSON.stringify(podRecord) + "\n");
  const pod = podObject(opts, name, `${cluster.name}-node`);
  let child: ChildProcess | undefined;
  const cleanup = async (exitCode: number): Promise<void> => {
    try {
      await markFinished(client, pod, exitCode);
    } catch {
      // The Pod may already be gone (deleted by the user, or the apiserver is down).
    }
    try {
      await client.core.deleteNamespacedPod({ name, namespace: opts.namespace, gracePeriodSeconds: 0 });
    } catch {
      // as above
    }
    await deleteNamespace(podRecord.podNamespace).catch(() => {});
    rmSync(claim.file, { force: true });
  };
  try {
    await createPodNetwork({
      podNamespace: podRecord.podNamespace,
      nodeNamespace: net.nodeNamespace,
      hostInterface: podRecord.hostInterface,
      address: claim.ip,
      podCIDR: net.podCIDR,
      nodeAddress: net.nodeAddress,
    });
    useMemberDns(podRecord.podNamespace, net, opts.namespace);
    try {
      await client.core.createNamespacedPod({ namespace: opts.namespace, body: pod });
    } catch (err) {
      throw new UserError(
        `could not create pod ${opts.namespace}/${name} in ${cluster.name}: ${apiErrorMessage(err)}`,
      );
    }
    const [exe, ...args] = inNamespace(podRecord.podNamespace, opts.command);
    // What the downward API would give a container.
    const env = {
      ...process.env,
      POD_NAME: name,
      POD_NAMESPACE: opts.namespace,
      POD_IP: claim.ip,
      NODE_NAME: pod.spec!.nodeName!,
      MERIDIAN_CLUSTER: cluster.name,
    };
    // The address is published before the process starts, so a gateway that tells peers which
    // namespace a connection comes from knows this pod by its very first connection.
    await markRunning(client, pod, claim.ip, net.nodeAddress, opts.readyPort === undefined);
    child = spawn(exe!, args, { stdio: "inherit", env });
    const spawned = child;
    const exited = new Promise<number>((resolve) => {
      spawned.once("exit", (code, signal) => resolve(code ?? (signal ? 128 + 15 : 1)));
      spawned.once("error", () => resolve(127));
    });
    if (opts.readyPort !== undefined) {
      void probeUntilReady(podRecord.podNamespace, opts.readyPort, exited).then(async (ok) => {
        if (ok) await markRunning(client, pod, claim.ip, net.nodeAddress, true);
      });
    }
    const finished = superviseUntilExit(client, opts.namespace, name, spawned, exited).then(async (code) => {
      await cleanup(code);
      return code;
    });
    return {
      record: podRecord,
      finished,
      stop: async () => {
        spawned.kill("SIGTERM");
        return finished;
      },
    };
  } catch (err) {
    child?.kill("SIGKILL");
    await cleanup(1);
    throw err;
  }
}

/** Probes `port` inside the pod's network every 100 ms until it accepts a connection. */
async function probeUntilReady(
  podNamespace: string,
  port: number,
  exited: Promise<number>,
): Promise<boolean> {
  let gone = false;
  void exited.then(() => (gone = true));
  while (!gone) {
    const ok = await new Promise<boolean>((resolve) => {
      const probe = spawn(
        "ip",
        ["netns", "exec", podNamespace, "bash", "-c", `exec 3<>/dev/tcp/127.0.0.1/${port}`],
        { stdio: "ignore" },
      );
      probe.once("exit", (code) => resolve(code === 0));
      probe.once("error", () => resolve(false));
    });
    if (ok) return true;
    await sleep(100);
  }
  return false;
}

/** Watches the Pod by polling: a deleted Pod stops the process, as the kubelet would. */
async function superviseUntilExit(
  client: ClusterClient,
  namespace: string,
  name: string,
  child: ChildProcess,
  exited: Promise<number>,
): Promise<number> {
  let done = false;
  void exited.then(() => (done = true));
  while (!done) {
    await Promise.race([exited, sleep(1000)]);
    if (done) break;
    try {
      const pod = await client.core.readNamespacedPod({ name, namespace });
      if (pod.metadata?.deletionTimestamp) child.kill("SIGTERM");
    } catch (err) {
      if (isNotFound(err)) child.kill("SIGTERM");
      // Other errors (apiserver down) leave the process running: losing the control plane must
      // not stop workloads.
    }
  }
  return exited;
}

async function ensureNamespace(client: ClusterClient, opts: RunOptions): Promise<void> {
  try {
    await client.core.readNamespace({ name: opts.namespace });
  } catch (err) {
    if (!isNotFound(err))
      throw new UserError(`cannot reach ${opts.cluster}'s API server: ${apiErrorMessage(err)}`);
    if (!opts.createNamespace) {
      throw new UserError(
        `namespace "${opts.namespace}" does not exist in ${opts.cluster}; create it ` +
          `('kubectl --context ${opts.cluster} create namespace ${opts.namespace}') or pass --create-namespace`,
      );
    }
    await client.core.createNamespace({ body: { metadata: { name: opts.namespace } } });
  }
}

/** Stops every pod supervisor of the clusterset; each removes its Pod and network on the way out. */
export async function stopAllPods(paths: StatePaths): Promise<string[]> {
  const stopped: string[] = [];
  await Promise.all(
    readPodRecords(paths).map(async ({ file, record }) => {
      if (await stopProcess(record.supervisor, 8000))
        stopped.push(`pod ${record.cluster}/${record.namespace}/${record.name}`);
      rmSync(file, { force: true });
    }),
  );
  return stopped;
}

export function listPods(paths: StatePaths): PodRecord[] {
  return readPodRecords(paths)
    .map((r) => r.record)
    .filter((r) => isAlive(r.supervisor));
}

/** Runs `command` in a member's node network with inherited stdio; resolves with its exit code. */
export function execInMember(stateDir: string, clusterName: string, command: string[]): Promise<number> {
  requireNetworkPrivileges("meridian exec");
  if (command.length === 0) throw new UserError("nothing to run: give a command after '--'");
  const { cluster } = loadMember(stateDir, clusterName);
  const [exe, ...args] = inNamespace(cluster.network!.nodeNamespace, command);
  return new Promise((resolve) => {
    const child = spawn(exe!, args, { stdio: "inherit" });
    child.once("exit", (code, signal) => resolve(code ?? (signal ? 128 + 15 : 1)));
    child.once("error", () => resolve(127));
  });
}

/** Runs a command inside a member's network and captures its output (for checks such as `explain`). */
export function captureInMember(
  stateDir: string,
  clusterName: string,
  command: string[],
  timeoutMs = 10_000,
): Promise<{ code: number; stdout: string; stderr: string }> {
  requireNetworkPrivileges("checks inside a member's network");
  const { cluster } = loadMember(stateDir, clusterName);
  const [exe, ...args] = inNamespace(cluster.network!.nodeNamespace, command);
  return new Promise((resolve) => {
    execFile(exe!, args, { timeout: timeoutMs }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === "number" ? error.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

export interface StaticPodSpec {
  namespace: string;
  name: string;
  labels: Record<string, string>;
  /** The Node the Pod is bound to (must exist: the endpointslice controller skips others). */
  nodeName: string;
  ip: string;
  ready?: boolean;
  hostname?: string;
}

/**
 * A Pod with no process behind it, written as Running (Ready unless `ready: false`) with `ip`:
 * what the endpointslice controller needs to publish an endpoint. For tests and benchmarks of the
 * control plane, where thousands of real processes would measure the machine, not Meridian.
 */
export async function createStaticPod(client: ClusterClient, spec: StaticPodSpec): Promise<void> {
  await client.core.createNamespacedPod({
    namespace: spec.namespace,
    body: {
      metadata: { name: spec.name, labels: spec.labels },
      spec: {
        nodeName: spec.nodeName,
        ...(spec.hostname ? { hostname: spec.hostname, subdomain: Object.values(spec.labels)[0] } : {}),
        containers: [{ name: "main", image: "meridian.local/static" }],
      },
    },
  });
  await client.core.patchNamespacedPodStatus(
    {
      name: spec.name,
      namespace: spec.namespace,
      body: {
        status: {
          phase: "Running",
          podIP: spec.ip,
          podIPs: [{ ip: spec.ip }],
          conditions: [{ type: "Ready", status: spec.ready === false ? "False" : "True" }],
        },
      },
    },
    MERGE_PATCH,
  );
}
