/**
 * Command lines and health checks for the upstream processes of a local clusterset: one etcd shared
 * by every cluster (each under its own key prefix), and per cluster a kube-apiserver and a
 * kube-controller-manager.
 */
import { readFileSync } from "node:fs";
import https from "node:https";
import http from "node:http";
import path from "node:path";
import type { Binaries } from "./binaries.js";
import type { ClusterRecord, ClustersetRecord, StatePaths } from "./state.js";

/**
 * Controllers the local clusters need: EndpointSlices from Services, namespace deletion, ownerRef
 * garbage collection, and service accounts with token Secrets (Meridian's identity in a member).
 */
export const KCM_CONTROLLERS = [
  "endpointslice-controller",
  "endpoints-controller",
  "namespace-controller",
  "garbage-collector-controller",
  "serviceaccount-controller",
  "serviceaccount-token-controller",
];

export interface ClusterPki {
  caFile: string;
  caKeyFile: string;
  serverCertFile: string;
  serverKeyFile: string;
  adminCertFile: string;
  adminKeyFile: string;
  serviceAccountKeyFile: string;
}

export function pkiFor(paths: StatePaths, cluster: string): ClusterPki {
  const pki = paths.pki;
  return {
    caFile: path.join(pki, "ca.crt"),
    caKeyFile: path.join(pki, "ca.key"),
    serverCertFile: path.join(pki, cluster, "apiserver.crt"),
    serverKeyFile: path.join(pki, cluster, "apiserver.key"),
    adminCertFile: path.join(pki, "admin.crt"),
    adminKeyFile: path.join(pki, "admin.key"),
    serviceAccountKeyFile: path.join(pki, cluster, "service-accounts.key"),
  };
}

export function etcdCommand(bins: Binaries, rec: ClustersetRecord, paths: StatePaths): string[] {
  const client = `http://127.0.0.1:${rec.etcd.clientPort}`;
  const peer = `http://127.0.0.1:${rec.etcd.peerPort}`;
  return [
    bins.etcd,
    `--name=meridian-${rec.id}`,
    `--data-dir=${paths.etcdData}`,
    `--listen-client-urls=${client}`,
    `--advertise-client-urls=${client}`,
    `--listen-peer-urls=${peer}`,
    `--initial-advertise-peer-urls=${peer}`,
    `--initial-cluster=meridian-${rec.id}=${peer}`,
    // A local, disposable store: durability per write buys nothing and costs start-up time.
    "--unsafe-no-fsync=true",
    "--quota-backend-bytes=4294967296",
    "--log-level=warn",
  ];
}

/** The address the apiserver publishes for the `kubernetes` Service: must not be loopback. */
export function advertiseAddress(cluster: ClusterRecord): string {
  return cluster.network?.nodeAddress ?? "10.255.255.1";
}

export function apiserverCommand(
  bins: Binaries,
  rec: ClustersetRecord,
  cluster: ClusterRecord,
  paths: StatePaths,
): string[] {
  const pki = pkiFor(paths, cluster.name);
  return [
    bins.kubeApiserver,
    `--etcd-servers=http://127.0.0.1:${rec.etcd.clientPort}`,
    `--etcd-prefix=${cluster.etcdPrefix}`,
    "--bind-address=127.0.0.1",
    `--secure-port=${cluster.apiserverPort}`,
    `--advertise-address=${advertiseAddress(cluster)}`,
    `--cert-dir=${path.join(paths.clusterDir(cluster.name), "apiserver-certs")}`,
    `--tls-cert-file=${pki.serverCertFile}`,
    `--tls-private-key-file=${pki.serverKeyFile}`,
    `--client-ca-file=${pki.caFile}`,
    "--service-account-issuer=https://kubernetes.default.svc",
    `--service-account-key-file=${pki.serviceAccountKeyFile}.pub`,
    `--service-account-signing-key-file=${pki.serviceAccountKeyFile}`,
    `--service-cluster-ip-range=${cluster.serviceCIDR}`,
    "--authorization-mode=RBAC",
    // No kubelet runs here, so nothing mounts service-account tokens into pods.
    "--disable-admission-plugins=ServiceAccount",
    "--allow-privileged=true",
    "--profiling=false",
    "--enable-priority-and-fairness=false",
    `--runtime-config=${UNUSED_API_GROUPS.map((g) => `${g}=false`).join(",")}`,
    "--v=1",
  ];
}

// Kept: everything a manifest of Meridian (or of a user, dry-run here) may contain, such as
// PodDisruptionBudgets, HorizontalPodAutoscalers and Jobs. See ADR 5.
const UNUSED_API_GROUPS = ["resource.k8s.io/v1", "flowcontrol.apiserver.k8s.io/v1"];

export function kcmCommand(bins: Binaries, cluster: ClusterRecord, paths: StatePaths): string[] {
  const pki = pkiFor(paths, cluster.name);
  return [
    bins.kubeControllerManager,
    `--kubeconfig=${kcmKubeconfigFile(paths, cluster.name)}`,
    "--leader-elect=false",
    `--controllers=${KCM_CONTROLLERS.join(",")}`,
    // No health endpoint: nothing here probes it, and a port picked free, then bound later, can be
    // taken meanwhile, which would kill the controller manager at start.
    "--secure-port=0",
    `--root-ca-file=${pki.caFile}`,
    `--service-account-private-key-file=${pki.serviceAccountKeyFile}`,
    "--use-service-account-credentials=false",
    "--concurrent-service-endpoint-syncs=10",
    "--kube-api-qps=200",
    "--kube-api-burst=400",
    "--profiling=false",
    "--v=1",
  ];
}

export function kcmKubeconfigFile(paths: StatePaths, cluster: string): string {
  return path.join(paths.clusterDir(cluster), "kube-controller-manager.kubeconfig");
}

export interface HealthOptions {
  url: string;
  caFile?: string;
  certFile?: string;
  keyFile?: string;
  timeoutMs?: number;
}

/**
 * A keep-alive agent holding the TLS settings of `opts`: polling through it costs one handshake
 * and one parsed CA, not one per poll (start-up is CPU-bound on small machines).
 */
function probeAgent(opts: HealthOptions): https.Agent {
  return new https.Agent({
    keepAlive: true,
    maxSockets: 1,
    ca: opts.caFile ? readFileSync(opts.caFile) : undefined,
    cert: opts.certFile ? readFileSync(opts.certFile) : undefined,
    key: opts.keyFile ? readFileSync(opts.keyFile) : undefined,
    rejectUnauthorized: Boolean(opts.caFile),
  });
}

/** One GET; true on HTTP 200. Never throws. */
export function probe(opts: HealthOptions, agent?: https.Agent): Promise<boolean> {
  const url = new URL(opts.url);
  if (url.protocol === "https:" && !agent) {
    const once = probeAgent(opts);
    return probe(opts, once).finally(() => once.destroy());
  }
  return new Promise((resolve) => {
    const common = { method: "GET", timeout: opts.timeoutMs ?? 1000 };
    const req =
      url.protocol === "https:" ? https.request(url, { ...common, agent }) : http.request(url, common);
    req.on("response", (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", () => resolve(false));
    req.end();
  });
}

/** Polls until healthy or `deadline`; the failure names what was waited for and where to look. */
export async function waitHealthy(
  what: string,
  opts: HealthOptions,
  timeoutMs: number,
  logFile: string,
  alive: () => boolean,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const agent = new URL(opts.url).protocol === "https:" ? probeAgent(opts) : undefined;
  try {
    while (Date.now() < deadline) {
      if (await probe({ ...opts, timeoutMs: 1000 }, agent)) return;
      if (!alive()) throw new Error(`${what} exited during start-up; see ${logFile}:\n${tail(logFile, 15)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    agent?.destroy();
  }
  throw new Error(
    `${what} did not become healthy at ${opts.url} within ${timeoutMs / 1000}s; see ${logFile}:\n${tail(logFile, 15)}`,
  );
}

export function tail(file: string, lines: number): string {
  try {
    return readFileSync(file, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}
