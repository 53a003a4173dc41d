/**
 * The local clusterset: a hub and N members, each a real kube-apiserver and kube-controller-manager
 * over one shared etcd, each member on its own network. `up` creates or resumes it, `down` stops it,
 * `status` reports on it.
 */
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import type { KubernetesObject } from "@kubernetes/client-node";
import { ClusterClient, MERGE_PATCH } from "../kube/client.js";
import { renderKubeconfig } from "../kube/kubeconfig.js";
import { applyCrds, loadManifestFiles, yamlFilesIn } from "../kube/manifests.js";
import {
  ensureCertificate,
  ensureCertificateAuthority,
  ensureSigningKey,
  writeSecretFile,
} from "../pki/openssl.js";
import { ABOUT_API_VERSION, CLUSTER_ID_PROPERTY, type ClusterProperty } from "../api/mcs.js";
import { meridianCrdDir, requireBinaries, upstreamCrdFiles, type Binaries } from "./binaries.js";
import {
  apiserverCommand,
  etcdCommand,
  kcmCommand,
  kcmKubeconfigFile,
  pkiFor,
  probe,
  waitHealthy,
} from "./controlplane.js";
import {
  addressInCIDR,
  deleteNamespace,
  ensureGatewayNetwork,
  ensureMemberNetwork,
  listNamespaces,
  requireNetworkPrivileges,
} from "./network.js";
import { isAlive, readProcessRecord, removeRecord, startDetached, stopProcess } from "./processes.js";
import {
  clustersetId,
  memberNames,
  readClusterset,
  StatePaths,
  UserError,
  writeClusterset,
  type ClusterRecord,
  type ClustersetRecord,
} from "./state.js";
import { stopAllPods } from "./pods.js";
import { localComponents } from "./components.js";
import "./builtin-components.js";
import { readdirSync } from "node:fs";

export const HUB = "hub";

export interface UpOptions {
  stateDir: string;
  members?: number;
  /** Every member gets the same pod CIDR (they are separate networks, so that is allowed). */
  overlappingPodCIDRs?: boolean;
  /**
   * Which Meridian components to run (names of registered local components, e.g. "controller",
   * "dns"); default all. Recorded, so a resumed clusterset runs the same ones.
   */
  components?: string[];
  log?: (line: string) => void;
}

export interface UpResult {
  record: ClustersetRecord;
  resumed: boolean;
  seconds: number;
}

const GATEWAY_CIDR = "172.31.0.0/24";
const SERVICE_CIDR = "10.96.0.0/16";

function podCIDRFor(index: number, overlapping: boolean): string {
  return overlapping ? "10.244.0.0/24" : `10.244.${index}.0/24`;
}

/** Asks the kernel for free loopback ports, holding all of them until every one is known. */
async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<net.Server>((resolve, reject) => {
          const s = net.createServer();
          s.once("error", reject);
          s.listen(0, "127.0.0.1", () => resolve(s));
        }),
    ),
  );
  const ports = servers.map((s) => (s.address() as net.AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

function portInUse(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once("error", () => resolve(true));
    s.listen(port, "127.0.0.1", () => s.close(() => resolve(false)));
  });
}

async function newRecord(
  paths: StatePaths,
  members: number,
  overlapping: boolean,
): Promise<ClustersetRecord> {
  const id = clustersetId(paths.dir);
  const names = [HUB, ...memberNames(members)];
  const ports = await freePorts(2 + names.length);
  const gatewayNamespace = `mrd-${id}-wan`;
  const clusters: ClusterRecord[] = names.map((name, i) => ({
    name,
    role: i === 0 ? "hub" : "member",
    apiserverPort: ports[2 + i]!,
    etcdPrefix: `/meridian/${name}`,
    serviceCIDR: SERVICE_CIDR,
    network:
      i === 0
        ? undefined
        : {
            nodeNamespace: `mrd-${id}-${name}`,
            podCIDR: podCIDRFor(i, overlapping),
            nodeAddress: addressInCIDR(podCIDRFor(i, overlapping), 1),
            gatewayAddress: addressInCIDR(GATEWAY_CIDR, 10 + i),
          },
  }));
  return {
    version: 1,
    id,
    createdAt: new Date().toISOString(),
    etcd: { clientPort: ports[0]!, peerPort: ports[1]! },
    gatewayNetwork: { namespace: gatewayNamespace, cidr: GATEWAY_CIDR },
    clusters,
  };
}

/** Exclusive lock so that two `up`s never race on one state dir. */
function acquireLock(paths: StatePaths): () => void {
  mkdirSync(paths.dir, { recursive: true });
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(paths.lockFile, "wx");
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return () => rmSync(paths.lockFile, { force: true });
    } catch {
      const holder = Number(readFileSync(paths.lockFile, "utf8"));
      if (Number.isInteger(holder) && holder > 0 && processExists(holder)) {
        throw new UserError(
          `another 'meridian up' (pid ${holder}) is working on ${paths.dir}; wait for it to finish`,
        );
      }
      rmSync(paths.lockFile, { force: true });
    }
  }
  throw new UserError(`could not lock ${paths.lockFile}`);
}

function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export function componentName(
  cluster: string,
  component: "kube-apiserver" | "kube-controller-manager",
): string {
  return `${cluster}-${component}`;
}

export function adminClient(paths: StatePaths, cluster: string): ClusterClient {
  return ClusterClient.fromFile(paths.kubeconfig, cluster);
}

/** Brings the clusterset up, creating it or resuming whatever of it is not running. */
export async function up(opts: UpOptions): Promise<UpResult> {
  const started = performance.now();
  const log = opts.log ?? (() => {});
  requireNetworkPrivileges("meridian up");
  const bins = requireBinaries();
  // Parsed before anything starts: a broken manifest should not leave half a clusterset behind.
  const crds = loadManifestFiles([...upstreamCrdFiles(), ...yamlFilesIn(meridianCrdDir())]);
  const paths = new StatePaths(opts.stateDir);
  const release = acquireLock(paths);
  try {
    let record = readClusterset(paths);
    const resumed = record !== undefined;
    if (record) {
      const members = record.clusters.length - 1;
      if (opts.members !== undefined && opts.members !== members) {
        throw new UserError(
          `${paths.dir} holds a clusterset with ${members} members; --members ${opts.members} cannot change it. ` +
            `Use another --state-dir, or 'meridian down --purge' first`,
        );
      }
      if (allRunning(paths, record)) {
        throw new UserError(
          `the clusterset in ${paths.dir} is already running (${record.clusters.map((c) => c.name).join(", ")}); ` +
            `see 'meridian status', or stop it with 'meridian down'`,
        );
      }
      log(`resuming the clusterset in ${paths.dir}`);
    } else {
      const members = opts.members ?? 3;
      if (!Number.isInteger(members) || members < 1 || members > 60) {
        throw new UserError(`--members must be a whole number from 1 to 60 (got ${String(opts.members)})`);
      }
      record = await newRecord(paths, members, opts.overlappingPodCIDRs ?? false);
      writeClusterset(paths, record);
      log(`creating a clusterset with a hub and ${members} members in ${paths.dir}`);
    }
    await checkPorts(paths, record);
    await ensurePki(paths, record);
    await ensureNetworks(record);
    const known = localComponents().map((c) => c.name);
    const wanted = opts.components ?? record.components ?? known;
    const unknown = wanted.filter((w) => !known.includes(w));
    if (unknown.length > 0)
      throw new UserError(`unknown component(s): ${unknown.join(", ")}; known: ${known.join(", ")}`);
    if (opts.components) writeClusterset(paths, (record = { ...record, components: opts.components }));
    const components = localComponents().filter((c) => wanted.includes(c.name));
    const ctx = { paths, record, bins, log };
    await Promise.all([
      ensureControlPlanes(bins, paths, record, log),
      ...components.map((c) => c.prepare?.(ctx)),
    ]);
    writeAdminKubeconfig(paths, record);
    await Promise.all(record.clusters.map((c) => bootstrapCluster(paths, c, crds)));
    // Components are independent of each other: start them together.
    await Promise.all(components.map((c) => c.ensure(ctx)));
    return { record, resumed, seconds: (performance.now() - started) / 1000 };
  } finally {
    release();
  }
}

/** Every control-plane process, and every component process recorded so far, is alive. */
function allRunning(paths: StatePaths, record: ClustersetRecord): boolean {
  const controlPlanes = [
    "etcd",
    ...record.clusters.flatMap((c) => [
      componentName(c.name, "kube-apiserver"),
      componentName(c.name, "kube-controller-manager"),
    ]),
  ];
  const names = new Set([...controlPlanes, ...recordedProcesses(paths)]);
  return [...names].every((n) => isAlive(readProcessRecord(paths.pidFile(n))));
}

/** A recorded port now held by another program is reported before anything starts. */
async function checkPorts(paths: StatePaths, record: ClustersetRecord): Promise<void> {
  const wanted: { port: number; owner: string; component: string }[] = [
    { port: record.etcd.clientPort, owner: "etcd client", component: "etcd" },
    { port: record.etcd.peerPort, owner: "etcd peer", component: "etcd" },
    ...record.clusters.map((c) => ({
      port: c.apiserverPort,
      owner: `${c.name} kube-apiserver`,
      component: componentName(c.name, "kube-apiserver"),
    })),
  ];
  for (const w of wanted) {
    if (isAlive(readProcessRecord(paths.pidFile(w.component)))) continue;
    if (await portInUse(w.port)) {
      throw new UserError(
        `port 127.0.0.1:${w.port} (recorded for the ${w.owner}) is in use by another program; ` +
          `stop that program, or start afresh with 'meridian down --purge --state-dir ${paths.dir}'`,
      );
    }
  }
}

async function ensurePki(paths: StatePaths, record: ClustersetRecord): Promise<void> {
  const ca = await ensureCertificateAuthority(paths.pki, "ca", `meridian-local-${record.id}`);
  await ensureCertificate(ca, {
    dir: paths.pki,
    name: "admin",
    commonName: "meridian-admin",
    organization: "system:masters",
    usage: "client",
  });
  await Promise.all(
    record.clusters.map(async (c) => {
      const pki = pkiFor(paths, c.name);
      const ips = ["127.0.0.1", "10.96.0.1"];
      if (c.network) ips.push(c.network.nodeAddress);
      await ensureCertificate(ca, {
        dir: `${paths.pki}/${c.name}`,
        name: "apiserver",
        commonName: `kube-apiserver-${c.name}`,
        dnsNames: ["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"],
        ipAddresses: ips,
        usage: "server",
      });
      await ensureSigningKey(pki.serviceAccountKeyFile);
    }),
  );
}

async function ensureNetworks(record: ClustersetRecord): Promise<void> {
  await ensureGatewayNetwork(record.gatewayNetwork.namespace);
  let index = 0;
  for (const c of record.clusters) {
    if (!c.network) continue;
    index++;
    await ensureMemberNetwork({
      ...c.network,
      gatewayCIDR: record.gatewayNetwork.cidr,
      gatewayNamespace: record.gatewayNetwork.namespace,
      wanPort: `m${index}`,
    });
  }
}

async function ensureControlPlanes(
  bins: Binaries,
  paths: StatePaths,
  record: ClustersetRecord,
  log: (line: string) => void,
): Promise<void> {
  const etcdPid = paths.pidFile("etcd");
  if (!isAlive(readProcessRecord(etcdPid))) {
    const [exe, ...args] = etcdCommand(bins, record, paths);
    startDetached({ executable: exe!, args, logFile: paths.logFile("etcd"), pidFile: etcdPid });
  }
  await waitHealthy(
    "etcd",
    { url: `http://127.0.0.1:${record.etcd.clientPort}/health` },
    30_000,
    paths.logFile("etcd"),
    () => isAlive(readProcessRecord(etcdPid)),
  );
  // Each control plane gets its share of the cores: several Go runtimes each sized to the whole
  // machine spend their start-up contending for it (measured: about 1 s less for `up` on 2 cores).
  const share = Math.max(1, Math.floor(os.cpus().length / record.clusters.length));
  const env = { ...process.env, GOMAXPROCS: process.env["GOMAXPROCS"] ?? String(share) };
  const pki = pkiFor(paths, HUB);
  const adminCert = readFileSync(pki.adminCertFile);
  const adminKey = readFileSync(pki.adminKeyFile);
  const ca = readFileSync(pki.caFile);
  await Promise.all(
    record.clusters.map(async (c) => {
      const apiName = componentName(c.name, "kube-apiserver");
      const apiPid = paths.pidFile(apiName);
      mkdirSync(paths.clusterDir(c.name), { recursive: true });
      if (!isAlive(readProcessRecord(apiPid))) {
        const [exe, ...args] = apiserverCommand(bins, record, c, paths);
        startDetached({ executable: exe!, args, logFile: paths.logFile(apiName), pidFile: apiPid, env });
      }
      const kcmName = componentName(c.name, "kube-controller-manager");
      const kcmPid = paths.pidFile(kcmName);
      if (!isAlive(readProcessRecord(kcmPid))) {
        writeSecretFile(
          kcmKubeconfigFile(paths, c.name),
          renderKubeconfig([
            {
              name: c.name,
              server: `https://127.0.0.1:${c.apiserverPort}`,
              caData: ca,
              clientCertData: adminCert,
              clientKeyData: adminKey,
            },
          ]),
        );
        const [exe, ...args] = kcmCommand(bins, c, paths);
        startDetached({ executable: exe!, args, logFile: paths.logFile(kcmName), pidFile: kcmPid, env });
      }
      await waitHealthy(
        `the ${c.name} kube-apiserver`,
        { url: `https://127.0.0.1:${c.apiserverPort}/readyz`, caFile: pki.caFile },
        60_000,
        paths.logFile(apiName),
        () => isAlive(readProcessRecord(apiPid)),
      );
      log(`${c.name}: kube-apiserver ready at https://127.0.0.1:${c.apiserverPort}`);
    }),
  );
}

function writeAdminKubeconfig(paths: StatePaths, record: ClustersetRecord): void {
  const pki = pkiFor(paths, HUB);
  const ca = readFileSync(pki.caFile);
  const cert = readFileSync(pki.adminCertFile);
  const key = readFileSync(pki.adminKeyFile);
  writeSecretFile(
    paths.kubeconfig,
    renderKubeconfig(
      record.clusters.map((c) => ({
        name: c.name,
        server: `https://127.0.0.1:${c.apiserverPort}`,
        caData: ca,
        clientCertData: cert,
        clientKeyData: key,
      })),
      HUB,
    ),
  );
}

export function nodeName(cluster: string): string {
  return `${cluster}-node`;
}

/** CRDs, the member's Node object, and its cluster-id ClusterProperty. */
async function bootstrapCluster(
  paths: StatePaths,
  cluster: ClusterRecord,
  crds: KubernetesObject[],
): Promise<void> {
  const client = adminClient(paths, cluster.name);
  await applyCrds(client, crds);
  if (!cluster.network) return;
  const node: KubernetesObject & { spec: object } = {
    apiVersion: "v1",
    kind: "Node",
    metadata: {
      name: nodeName(cluster.name),
      labels: {
        "kubernetes.io/hostname": nodeName(cluster.name),
        "topology.kubernetes.io/region": "local",
        "topology.kubernetes.io/zone": `local-${cluster.name}`,
        "meridian.dev/local-node": "true",
      },
    },
    spec: { podCIDR: cluster.network.podCIDR, podCIDRs: [cluster.network.podCIDR] },
  };
  await client.apply(node);
  await client.core.patchNodeStatus(
    {
      name: nodeName(cluster.name),
      body: {
        status: {
          addresses: [{ type: "InternalIP", address: cluster.network.nodeAddress }],
          conditions: [
            {
              type: "Ready",
              status: "True",
              reason: "MeridianLocalNode",
              message: "a local clusterset node: processes run as pods in its network namespaces",
              lastHeartbeatTime: new Date(),
              lastTransitionTime: new Date(),
            },
          ],
        },
      },
    },
    MERGE_PATCH,
  );
  const property: ClusterProperty = {
    apiVersion: ABOUT_API_VERSION,
    kind: "ClusterProperty",
    metadata: { name: CLUSTER_ID_PROPERTY },
    spec: { value: cluster.name },
  };
  await client.apply(property);
}

export interface ComponentStatus {
  name: string;
  pid: number | null;
  running: boolean;
}

export type ClusterHealth = "Ready" | "Degraded" | "Down" | "Stopped";

export interface ClusterStatus {
  name: string;
  role: "hub" | "member";
  context: string;
  server: string;
  health: ClusterHealth;
  components: ComponentStatus[];
  network: {
    namespace: string;
    podCIDR: string;
    nodeAddress: string;
    gatewayAddress: string;
  } | null;
  /** Component-specific facts added by local components (e.g. "dns": { address }). */
  [component: string]: unknown;
}

/** The documented `meridian status -o json` shape (see docs/status-json.md). */
export interface ClustersetStatus {
  apiVersion: "meridian.dev/v1alpha1";
  kind: "ClustersetStatus";
  stateDir: string;
  id: string;
  kubeconfig: string;
  etcd: ComponentStatus & { healthy: boolean };
  clusters: ClusterStatus[];
}

/** Names of every recorded process (pid file), e.g. "west-kube-apiserver", "west-dns". */
function recordedProcesses(paths: StatePaths): string[] {
  if (!existsSync(paths.pids)) return [];
  return readdirSync(paths.pids)
    .filter((f) => f.endsWith(".pid"))
    .map((f) => f.slice(0, -".pid".length))
    .sort();
}

function component(paths: StatePaths, name: string): ComponentStatus {
  const rec = readProcessRecord(paths.pidFile(name));
  const running = isAlive(rec);
  return { name, pid: running && rec ? rec.pid : null, running };
}

export async function status(stateDir: string): Promise<ClustersetStatus> {
  const paths = new StatePaths(stateDir);
  const record = readClusterset(paths);
  if (!record) {
    throw new UserError(
      `no clusterset in ${paths.dir}; create one with 'meridian up --state-dir ${paths.dir}'`,
    );
  }
  const etcd = component(paths, "etcd");
  const etcdHealthy =
    etcd.running && (await probe({ url: `http://127.0.0.1:${record.etcd.clientPort}/health` }));
  const caFile = pkiFor(paths, HUB).caFile;
  const clusters = await Promise.all(
    record.clusters.map(async (c): Promise<ClusterStatus> => {
      const api = component(paths, componentName(c.name, "kube-apiserver"));
      const kcm = component(paths, componentName(c.name, "kube-controller-manager"));
      const others = recordedProcesses(paths)
        .filter((n) => n.startsWith(`${c.name}-`) && n !== api.name && n !== kcm.name)
        .map((n) => component(paths, n));
      const answering =
        api.running && (await probe({ url: `https://127.0.0.1:${c.apiserverPort}/readyz`, caFile }));
      let health: ClusterHealth;
      if (!api.running && !kcm.running) health = "Stopped";
      else if (!answering) health = "Down";
      else if (!kcm.running || !etcdHealthy || others.some((o) => !o.running)) health = "Degraded";
      else health = "Ready";
      const extras = Object.assign(
        {},
        ...localComponents().map((lc) =>
          lc.describe ? { [lc.name]: lc.describe({ paths, record }, c) } : {},
        ),
      ) as Record<string, unknown>;
      return {
        name: c.name,
        role: c.role,
        context: c.name,
        server: `https://127.0.0.1:${c.apiserverPort}`,
        health,
        components: [api, kcm, ...others],
        ...extras,
        network: c.network
          ? {
              namespace: c.network.nodeNamespace,
              podCIDR: c.network.podCIDR,
              nodeAddress: c.network.nodeAddress,
              gatewayAddress: c.network.gatewayAddress,
            }
          : null,
      };
    }),
  );
  return {
    apiVersion: "meridian.dev/v1alpha1",
    kind: "ClustersetStatus",
    stateDir: paths.dir,
    id: record.id,
    kubeconfig: paths.kubeconfig,
    etcd: { ...etcd, healthy: etcdHealthy },
    clusters,
  };
}

export interface DownResult {
  stopped: string[];
  namespacesRemoved: number;
  purged: boolean;
}

/** Stops everything the clusterset started (by recorded pids) and removes its networks. */
export async function down(stateDir: string, purge: boolean): Promise<DownResult> {
  const paths = new StatePaths(stateDir);
  const record = readClusterset(paths);
  const stopped: string[] = [];
  let namespacesRemoved = 0;
  if (record) {
    stopped.push(...(await stopAllPods(paths)));
    const kcms = record.clusters.map((c) => componentName(c.name, "kube-controller-manager"));
    const apis = record.clusters.map((c) => componentName(c.name, "kube-apiserver"));
    const meridians = recordedProcesses(paths).filter(
      (n) => n !== "etcd" && !kcms.includes(n) && !apis.includes(n),
    );
    for (const group of [meridians, kcms, apis, ["etcd"]]) {
      await Promise.all(
        group.map(async (name) => {
          const pidFile = paths.pidFile(name);
          if (await stopProcess(readProcessRecord(pidFile))) stopped.push(name);
          removeRecord(pidFile);
        }),
      );
    }
    if (process.getuid?.() === 0) {
      const prefix = `mrd-${record.id}-`;
      for (const ns of await listNamespaces()) {
        if (ns.startsWith(prefix)) {
          await deleteNamespace(ns);
          namespacesRemoved++;
        }
      }
    }
  }
  if (purge && existsSync(paths.dir)) {
    rmSync(paths.dir, { recursive: true, force: true });
  }
  return { stopped, namespacesRemoved, purged: purge && record !== undefined };
}
