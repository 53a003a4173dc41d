/** Meridian's own API (group `meridian.dev`): the cluster registry. CRD: deploy/crds/meridian.dev_clusters.yaml. */
import type { V1Condition, V1ObjectMeta } from "@kubernetes/client-node";

export const MERIDIAN_GROUP = "meridian.dev";
export const CLUSTER_API_VERSION = `${MERIDIAN_GROUP}/v1alpha1`;
/** Namespace in the hub holding Cluster objects, their credential Secrets and the controller's Lease. */
export const DEFAULT_HUB_NAMESPACE = "meridian-system";
/** Namespace Meridian creates in each member for its own identity and components. */
export const MEMBER_NAMESPACE = "meridian-system";

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
