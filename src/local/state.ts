/**
 * The on-disk state of a local clusterset: where it lives, what it is made of, and how that is
 * recorded so that `up` can resume, `down` can stop exactly what was started, and several
 * clustersets can run side by side on one machine.
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import path from "node:path";

export const STATE_FILE = "clusterset.json";
export const STATE_VERSION = 1;

/** Readable names for the first members; more members are numbered. */
const MEMBER_NAMES = [
  "west",
  "east",
  "north",
  "south",
  "central",
  "alpine",
  "coast",
  "delta",
  "harbor",
  "island",
];

export function memberNames(count: number): string[] {
  return Array.from({ length: count }, (_, i) => MEMBER_NAMES[i] ?? `member${i + 1}`);
}

/** The state dir from a flag, then `MERIDIAN_STATE_DIR`, then `./.meridian`. */
export function resolveStateDir(flag?: string): string {
  return path.resolve(flag ?? process.env["MERIDIAN_STATE_DIR"] ?? ".meridian");
}

/**
 * A short id derived from the state dir's absolute path. Network namespace names carry it, so two
 * clustersets in different state dirs never share a namespace.
 */
export function clustersetId(stateDir: string): string {
  return createHash("sha256").update(path.resolve(stateDir)).digest("hex").slice(0, 6);
}

export interface MemberNetwork {
  /** Network namespace that is the member's node: pod bridge, gateway uplink, DNS, gateway. */
  nodeNamespace: string;
  podCIDR: string;
  /** The node's address on the pod bridge (the pods' default route). */
  nodeAddress: string;
  /** The member's address on the shared gateway network. */
  gatewayAddress: string;
}

export interface ClusterRecord {
  name: string;
  role: "hub" | "member";
  apiserverPort: number;
  /** Key prefix of this cluster's objects in the shared etcd. */
  etcdPrefix: string;
  /** Cluster-scoped address range for Services. */
  serviceCIDR: string;
  network?: MemberNetwork;
}

export interface ClustersetRecord {
  version: number;
  id: string;
  createdAt: string;
  etcd: { clientPort: number; peerPort: number };
  /** Shared network joining only the members' gateway addresses. */
  gatewayNetwork: { namespace: string; cidr: string };
  clusters: ClusterRecord[];
  /** Meridian components this clusterset runs (all registered ones when absent). */
  components?: string[];
}

export class StatePaths {
  constructor(readonly dir: string) {}
  get stateFile(): string {
    return path.join(this.dir, STATE_FILE);
  }
  get kubeconfig(): string {
    return path.join(this.dir, "kubeconfig");
  }
  get pki(): string {
    return path.join(this.dir, "pki");
  }
  get logs(): string {
    return path.join(this.dir, "logs");
  }
  get pids(): string {
    return path.join(this.dir, "pids");
  }
  get etcdData(): string {
    return path.join(this.dir, "etcd");
  }
  get lockFile(): string {
    return path.join(this.dir, "up.lock");
  }
  get pods(): string {
    return path.join(this.dir, "pods");
  }
  clusterDir(cluster: string): string {
    return path.join(this.dir, "clusters", cluster);
  }
  pidFile(component: string): string {
    return path.join(this.pids, `${component}.pid`);
  }
  logFile(component: string): string {
    return path.join(this.logs, `${component}.log`);
  }
}

export function readClusterset(paths: StatePaths): ClustersetRecord | undefined {
  if (!existsSync(paths.stateFile)) return undefined;
  const raw = JSON.parse(readFileSync(paths.stateFile, "utf8")) as ClustersetRecord;
  if (raw.version !== STATE_VERSION) {
    throw new Error(
      `${paths.stateFile} has state version ${String(raw.version)}, this meridian understands ${STATE_VERSION}; ` +
        `run 'meridian down --purge --state-dir ${paths.dir}' and 'meridian up' again`,
    );
  }
  return raw;
}

export function writeClusterset(paths: StatePaths, record: ClustersetRecord): void {
  mkdirSync(paths.dir, { recursive: true });
  const tmp = `${paths.stateFile}.tmp`;
  writeFileSync(tmp, JSON.stringify(record, null, 2) + "\n");
  renameSync(tmp, paths.stateFile);
}

export function findCluster(record: ClustersetRecord, name: string): ClusterRecord {
  const cluster = record.clusters.find((c) => c.name === name);
  if (!cluster) {
    const known = record.clusters.map((c) => c.name).join(", ");
    throw new UserError(`unknown cluster "${name}"; this clusterset has: ${known}`);
  }
  return cluster;
}

/** An error caused by the user's input or environment: printed without a stack trace. */
export class UserError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
    this.name = "UserError";
  }
}
