/**
 * The `clusterset.local` DNS of the local clusterset: one `meridian dns` per member, inside that
 * member's node network, answering on `<nodeAddress>:53` (UDP and TCP) from the member's own API
 * server (reached through the in-member API relay, see apirelay.ts). Commands run with
 * `meridian exec <member>` and processes run with `meridian run` get it as their resolver.
 */
import { ensureApiRelay, ensureMemberApiAccess } from "./apirelay.js";
import {
  meridianCommand,
  readyFilePath,
  registerLocalComponent,
  startComponentProcess,
  waitForReadyFile,
} from "./components.js";
import type { ComponentContext } from "./components.js";
import { writeNamespaceResolvConf } from "./network.js";
import type { ClusterRecord, MemberNetwork } from "./state.js";

export const DNS_ZONE = "clusterset.local";
export const DNS_PORT = 53;
export const DNS_METRICS_PORT = 9153;
const READY_TIMEOUT_MS = 60_000;

export function dnsProcessName(cluster: string): string {
  return `${cluster}-dns`;
}

/** Where a member's DNS answers. */
export function dnsAddress(network: MemberNetwork): string {
  return `${network.nodeAddress}:${DNS_PORT}`;
}

/**
 * Makes the member's DNS the resolver of a network namespace (`ip netns exec` bind-mounts
 * /etc/netns/<ns>/resolv.conf). `namespace` is the Kubernetes namespace of a pod, for its search
 * path, as the kubelet writes `<ns>.svc.cluster.local` first.
 */
export function useMemberDns(networkNamespace: string, network: MemberNetwork, namespace?: string): void {
  const search = [`svc.${DNS_ZONE}`, DNS_ZONE];
  if (namespace) search.unshift(`${namespace}.svc.${DNS_ZONE}`);
  writeNamespaceResolvConf(networkNamespace, network.nodeAddress, search);
}

async function ensureMemberDns(ctx: ComponentContext, cluster: ClusterRecord): Promise<void> {
  const network = cluster.network!;
  const access = await ensureMemberApiAccess(ctx, cluster);
  const name = dnsProcessName(cluster.name);
  const readyFile = readyFilePath(ctx, name);
  const proc = startComponentProcess(ctx, {
    name,
    argv: meridianCommand(
      "dns",
      "--kubeconfig",
      access.kubeconfig,
      "--api-socket",
      access.socket,
      "--listen",
      dnsAddress(network),
      "--metrics",
      `${network.nodeAddress}:${DNS_METRICS_PORT}`,
      "--zone",
      DNS_ZONE,
      "--ready-file",
      readyFile,
    ),
    networkNamespace: network.nodeNamespace,
  });
  useMemberDns(network.nodeNamespace, network);
  // Ready means synced: until then every missing name is SERVFAIL, which tests and users would see.
  // The HTTP probe (a process in the member's network) is the fallback for a server started
  // without a ready file.
  await waitForReadyFile(ctx, name, proc, READY_TIMEOUT_MS, () => readyInMember(network));
}

/** The readiness endpoint lives in the member's network: probe it from there with curl. */
async function readyInMember(network: MemberNetwork): Promise<boolean> {
  const { execFile } = await import("node:child_process");
  return new Promise((resolve) => {
    execFile(
      "ip",
      [
        "netns",
        "exec",
        network.nodeNamespace,
        "curl",
        "-sf",
        "-m",
        "2",
        `http://${network.nodeAddress}:${DNS_METRICS_PORT}/ready`,
      ],
      (error) => resolve(!error),
    );
  });
}

registerLocalComponent({
  name: "dns",
  prepare: ensureApiRelay,
  async ensure(ctx) {
    const members = ctx.record.clusters.filter((c) => c.network);
    await Promise.all(members.map((c) => ensureMemberDns(ctx, c)));
    ctx.log(`clusterset.local DNS answering in ${members.map((c) => c.name).join(", ")}`);
  },
  describe(_ctx, cluster) {
    if (!cluster.network) return undefined;
    return {
      address: dnsAddress(cluster.network),
      zone: DNS_ZONE,
      metrics: `http://${cluster.network.nodeAddress}:${DNS_METRICS_PORT}/metrics`,
      process: dnsProcessName(cluster.name),
    };
  },
});
