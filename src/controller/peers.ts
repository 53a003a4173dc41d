/**
 * The peer list every member's gateway routes by: each joined cluster's gateway address and
 * locality, from the hub's Cluster objects, written into every member (a ConfigMap in
 * `meridian-system`) so gateways need nothing from the hub at run time.
 */
import type { KubernetesObject, V1ConfigMap } from "@kubernetes/client-node";
import type { Cluster } from "../api/meridian.js";
import { MEMBER_NAMESPACE } from "../api/meridian.js";
import { PEERS_CONFIGMAP, PEERS_KEY } from "../gateway/kube-routes.js";
import type { PeerGateway } from "../gateway/routes.js";
import { LABEL_MANAGED_BY } from "./names.js";

/** `host:port` or `[v6]:port`; undefined when it is neither. */
export function parseGatewayAddress(address: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(address.trim());
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return undefined;
  return { host: (m[1] ?? m[2])!, port };
}

export function peerGateways(clusters: readonly Cluster[]): PeerGateway[] {
  const peers: PeerGateway[] = [];
  for (const c of clusters) {
    const address = c.spec.gatewayAddresses?.map(parseGatewayAddress).find((a) => a !== undefined);
    if (!address) continue;
    const locality = c.spec.locality;
    peers.push({
      clusterId: c.spec.clusterID,
      ...address,
      ...(locality && (locality.region || locality.zone) ? { locality: { ...locality } } : {}),
    });
  }
  return peers.sort((a, b) => a.clusterId.localeCompare(b.clusterId));
}

export function desiredPeersConfigMap(clusters: readonly Cluster[]): V1ConfigMap & KubernetesObject {
  return {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: {
      name: PEERS_CONFIGMAP,
      namespace: MEMBER_NAMESPACE,
      labels: { [LABEL_MANAGED_BY]: "meridian" },
    },
    data: { [PEERS_KEY]: JSON.stringify(peerGateways(clusters)) },
  };
}
