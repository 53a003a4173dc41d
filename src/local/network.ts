/**
 * Networks of the local clusterset, built from Linux network namespaces, veth pairs and bridges.
 *
 *   member node namespace  (one per member)   bridge "pods" carries the member's pod CIDR;
 *       └─ veth "uplink" ───────────────────  the member's gateway address on the shared network
 *   gateway namespace      (one per clusterset) bridge "wan" joins every member's uplink
 *   pod namespace          (one per process run as a pod) veth "eth0" on the member's "pods" bridge
 *
 * Pods reach their own member's pods through the bridge and nothing else: a member's node has no
 * route to another member's pod CIDR and does not forward, so pod CIDRs may overlap. Every address
 * lives inside namespaces made here; the host's own namespace gets none.
 */
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import { UserError } from "./state.js";

const run = promisify(execFile);

export const POD_BRIDGE = "pods";
export const UPLINK = "uplink";
export const WAN_BRIDGE = "wan";

async function ip(args: string[]): Promise<string> {
  try {
    const { stdout } = await run("ip", args);
    return stdout;
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === "ENOENT")
      throw new UserError("the 'ip' command is missing; install iproute2 (scripts/setup.sh does)");
    throw new Error(`ip ${args.join(" ")}: ${(e.stderr ?? e.message).trim()}`, { cause: err });
  }
}

/** Namespaces need root (CAP_NET_ADMIN and CAP_SYS_ADMIN); say so before anything half-starts. */
export function requireNetworkPrivileges(what: string): void {
  if (process.getuid?.() !== 0) {
    throw new UserError(
      `${what} creates network namespaces and needs root; run it as root (e.g. 'sudo -E meridian ...')`,
    );
  }
}

export async function listNamespaces(): Promise<string[]> {
  const out = await ip(["netns", "list"]);
  return out
    .split("\n")
    .map((line) => line.split(" ")[0] ?? "")
    .filter((name) => name.length > 0);
}

export function namespaceExists(name: string): boolean {
  return existsSync(path.join("/run/netns", name));
}

async function linkExists(ns: string, link: string): Promise<boolean> {
  try {
    await ip(["-n", ns, "link", "show", link]);
    return true;
  } catch {
    return false;
  }
}

export async function deleteNamespace(name: string): Promise<void> {
  if (!namespaceExists(name)) return;
  await ip(["netns", "delete", name]);
  rmSync(path.join("/etc/netns", name), { recursive: true, force: true });
}

async function freshNamespace(name: string): Promise<void> {
  await deleteNamespace(name);
  await ip(["netns", "add", name]);
  await ip(["-n", name, "link", "set", "lo", "up"]);
}

export function prefixLength(cidr: string): number {
  const bits = Number(cidr.split("/")[1]);
  if (!Number.isInteger(bits)) throw new Error(`not a CIDR: ${cidr}`);
  return bits;
}

/** The shared network: a namespace holding one bridge that every member's uplink joins. */
export async function ensureGatewayNetwork(ns: string): Promise<void> {
  if (namespaceExists(ns) && (await linkExists(ns, WAN_BRIDGE))) return;
  await freshNamespace(ns);
  await ip(["-n", ns, "link", "add", WAN_BRIDGE, "type", "bridge"]);
  await ip(["-n", ns, "link", "set", WAN_BRIDGE, "up"]);
}

export interface MemberNetworkSpec {
  nodeNamespace: string;
  podCIDR: string;
  nodeAddress: string;
  gatewayAddress: string;
  gatewayCIDR: string;
  gatewayNamespace: string;
  /** Name of the uplink's peer inside the gateway namespace (unique there, ≤ 15 chars). */
  wanPort: string;
}

/**
 * Unsent bytes a TCP socket of the member's node network (where its gateway runs) may leave in the
 * kernel before it stops taking more. Linux lets a send buffer grow to several MiB, where a
 * multiplexed connection's bytes would wait in arrival order; since the gateway keeps its bytes in
 * flight to a measured window (ADR 8) this only trims what the kernel holds, the same setting the
 * chart offers real clusters (bench/gateway-hol.ts measures both).
 */
export const GATEWAY_NOTSENT_LOWAT = 16 * 1024;

/** A member's node namespace with its pod bridge and its uplink to the gateway network. */
export async function ensureMemberNetwork(spec: MemberNetworkSpec): Promise<void> {
  const ns = spec.nodeNamespace;
  if (!(namespaceExists(ns) && (await linkExists(ns, POD_BRIDGE)) && (await linkExists(ns, UPLINK)))) {
    await createMemberNetwork(spec);
  }
  // net.* sysctls belong to the namespace of the process that writes them.
  await ip([
    "netns",
    "exec",
    ns,
    "sh",
    "-c",
    `echo ${GATEWAY_NOTSENT_LOWAT} > /proc/sys/net/ipv4/tcp_notsent_lowat`,
  ]);
}

async function createMemberNetwork(spec: MemberNetworkSpec): Promise<void> {
  const ns = spec.nodeNamespace;
  await freshNamespace(ns);
  await ip(["-n", ns, "link", "add", POD_BRIDGE, "type", "bridge"]);
  await ip(["-n", ns, "addr", "add", `${spec.nodeAddress}/${prefixLength(spec.podCIDR)}`, "dev", POD_BRIDGE]);
  await ip(["-n", ns, "link", "set", POD_BRIDGE, "up"]);
  if (await linkExists(spec.gatewayNamespace, spec.wanPort)) {
    await ip(["-n", spec.gatewayNamespace, "link", "delete", spec.wanPort]);
  }
  await ip([
    "-n",
    ns,
    "link",
    "add",
    UPLINK,
    "type",
    "veth",
    "peer",
    "name",
    spec.wanPort,
    "netns",
    spec.gatewayNamespace,
  ]);
  await ip([
    "-n",
    ns,
    "addr",
    "add",
    `${spec.gatewayAddress}/${prefixLength(spec.gatewayCIDR)}`,
    "dev",
    UPLINK,
  ]);
  await ip(["-n", ns, "link", "set", UPLINK, "up"]);
  await ip(["-n", spec.gatewayNamespace, "link", "set", spec.wanPort, "master", WAN_BRIDGE, "up"]);
}

export interface PodNetworkSpec {
  podNamespace: string;
  nodeNamespace: string;
  /** The pod's veth end inside the node namespace (unique there, ≤ 15 chars). */
  hostInterface: string;
  address: string;
  podCIDR: string;
  nodeAddress: string;
}

/** A pod's own namespace: eth0 on the member's pod bridge, default route via the node. */
export async function createPodNetwork(spec: PodNetworkSpec): Promise<void> {
  await freshNamespace(spec.podNamespace);
  if (await linkExists(spec.nodeNamespace, spec.hostInterface)) {
    await ip(["-n", spec.nodeNamespace, "link", "delete", spec.hostInterface]);
  }
  await ip([
    "-n",
    spec.nodeNamespace,
    "link",
    "add",
    spec.hostInterface,
    "type",
    "veth",
    "peer",
    "name",
    "eth0",
    "netns",
    spec.podNamespace,
  ]);
  await ip(["-n", spec.nodeNamespace, "link", "set", spec.hostInterface, "master", POD_BRIDGE, "up"]);
  await ip([
    "-n",
    spec.podNamespace,
    "addr",
    "add",
    `${spec.address}/${prefixLength(spec.podCIDR)}`,
    "dev",
    "eth0",
  ]);
  await ip(["-n", spec.podNamespace, "link", "set", "eth0", "up"]);
  await ip(["-n", spec.podNamespace, "route", "add", "default", "via", spec.nodeAddress]);
}

/**
 * `ip netns exec` bind-mounts /etc/netns/<ns>/resolv.conf over /etc/resolv.conf, which is how
 * commands in a member's network get that member's DNS server as their resolver.
 */
export function writeNamespaceResolvConf(ns: string, nameserver: string, search: string[]): void {
  const dir = path.join("/etc/netns", ns);
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    path.join(dir, "resolv.conf"),
    `nameserver ${nameserver}\nsearch ${search.join(" ")}\noptions ndots:5\n`,
  );
}

/** argv that runs `command` inside network namespace `ns`. */
export function inNamespace(ns: string, command: string[]): string[] {
  return ["ip", "netns", "exec", ns, ...command];
}

/** Addresses of a /24-or-larger IPv4 CIDR as numbers, for allocation. */
export function ipv4ToNumber(address: string): number {
  const parts = address.split(".").map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) {
    throw new Error(`not an IPv4 address: ${address}`);
  }
  return (((parts[0]! << 24) >>> 0) + (parts[1]! << 16) + (parts[2]! << 8) + parts[3]!) >>> 0;
}

export function numberToIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join(".");
}

/** The `offset`-th address of `cidr` (offset 1 is the first usable one). */
export function addressInCIDR(cidr: string, offset: number): string {
  const [base] = cidr.split("/");
  const size = 2 ** (32 - prefixLength(cidr));
  if (offset <= 0 || offset >= size - 1) throw new Error(`offset ${offset} is outside ${cidr}`);
  return numberToIpv4(ipv4ToNumber(base ?? "") + offset);
}
