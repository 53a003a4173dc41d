/** Meridian's own API (group `meridian.dev`): the cluster registry. CRD: deploy/crds/meridian.dev_clusters.yaml. */
import type { V1Condition, V1ObjectMeta } from "@kubernetes/client-node";

export const MERIDIAN_GROUP = "meridian.dev";
export const CLUSTER_API_VERSION = `${MERIDIAN_GROUP}/v1alpha1`;
/** Namespace in the hub holding Cluster objects, their credential Secrets and the controller's Lease. */
export const DEFAULT_HUB_NAMESPACE = "meridian-system";
/** Namespace Meridian creates in each member for its own identity and components. */
export const MEMBER_NAMESPACE = "meridian-system";

/**
 * On a ServiceImport in a member with a gateway: the gateway's listen port for each port of the
 * service, as `<port name>/<protocol>=<listen port>`, comma-separated. The controller allocates
 * them and points the imported slices there; the gateway listens where they say.
 */
export const ANNOTATION_GATEWAY_LISTEN_PORTS = "gateway.meridian.dev/listen-ports";
/** The Service (in `meridian-system` of a member) whose ready endpoints are the member's gateway pods. */
export const GATEWAY_SERVICE = "meridian-gateway";

export function formatListenPorts(ports: ReadonlyMap<string, number>): string {
  return [...ports]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([ref, port]) => `${ref}=${port}`)
    .join(",");
}

/** The inverse of {@link formatListenPorts}; entries that do not parse are left out. */
export function parseListenPorts(value: string | undefined): Map<string, number> {
  const out = new Map<string, number>();
  for (const entry of (value ?? "").split(",")) {
    const m = /^([^=]*\/[A-Z]+)=(\d{1,5})$/.exec(entry.trim());
    if (m && Number(m[2]) >= 1 && Number(m[2]) <= 65535) out.set(m[1]!, Number(m[2]));
  }
  return out;
}

export interface ClusterSpec {
  clusterID: string;
  gatewayAddresses?: string[];
  locality?: { region?: string; zone?: string };
  credentials: { secretName: string; key?: string };
}

export interface ClusterStatus {
  conditions?: V1Condition[];
  lastHeartbeatTime?: string | Date;
  kubernetesVersion?: string;
  exports?: number;
  imports?: number;
}

export interface Cluster {
  apiVersion?: string;
  kind?: "Cluster";
  metadata: V1ObjectMeta;
  spec: ClusterSpec;
  status?: ClusterStatus;
}
