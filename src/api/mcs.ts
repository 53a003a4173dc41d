/**
 * Types and well-known names of the Kubernetes Multi-Cluster Services API (KEP-1645, group
 * `multicluster.x-k8s.io`) and of ClusterProperty (KEP-2149, group `about.k8s.io`).
 *
 * Written from the mcs-api v0.5.0 Go types; `mcs.test.ts` checks them against the upstream CRD
 * schemas that `scripts/fetch-crds.sh` takes from the `sigs.k8s.io/mcs-api` Go module.
 */
import type { V1ObjectMeta, V1Condition } from "@kubernetes/client-node";

export const MCS_GROUP = "multicluster.x-k8s.io";
/** The version Meridian writes; v1alpha1 is served by the same CRDs with an identical schema. */
export const MCS_VERSION = "v1beta1";
export const MCS_API_VERSION = `${MCS_GROUP}/${MCS_VERSION}`;

export const ABOUT_GROUP = "about.k8s.io";
export const ABOUT_VERSION = "v1beta1";
export const ABOUT_API_VERSION = `${ABOUT_GROUP}/${ABOUT_VERSION}`;

/** ClusterProperty names defined by KEP-2149. */
export const CLUSTER_ID_PROPERTY = "cluster.clusterset.k8s.io";
export const CLUSTERSET_PROPERTY = "clusterset.k8s.io";

/** Labels an MCS EndpointSlice carries. */
export const LABEL_SERVICE_NAME = "multicluster.kubernetes.io/service-name";
export const LABEL_SOURCE_CLUSTER = "multicluster.kubernetes.io/source-cluster";
export const LABEL_ENDPOINTSLICE_MANAGED_BY = "endpointslice.kubernetes.io/managed-by";

export type ServiceImportType = "ClusterSetIP" | "Headless";
export type IPFamily = "IPv4" | "IPv6";
export type ConditionStatus = "True" | "False" | "Unknown";

export interface ServiceExportSpec {
  exportedLabels?: Record<string, string>;
  exportedAnnotations?: Record<string, string>;
}

export interface ServiceExport {
  apiVersion?: string;
  kind?: "ServiceExport";
  metadata: V1ObjectMeta;
  spec?: ServiceExportSpec;
  status?: { conditions?: V1Condition[] };
}

export interface ServiceImportPort {
  name?: string;
  protocol?: "TCP" | "UDP" | "SCTP";
  appProtocol?: string;
  port: number;
}

export interface ServiceImportSpec {
  ports: ServiceImportPort[];
  ips?: string[];
  type: ServiceImportType;
  sessionAffinity?: string;
  sessionAffinityConfig?: { clientIP?: { timeoutSeconds?: number } };
  ipFamilies?: IPFamily[];
  internalTrafficPolicy?: string;
  trafficDistribution?: string;
}

export interface ServiceImport {
  apiVersion?: string;
  kind?: "ServiceImport";
  metadata: V1ObjectMeta;
  spec: ServiceImportSpec;
  status?: { clusters?: { cluster: string }[]; conditions?: V1Condition[] };
}

export interface ClusterProperty {
  apiVersion?: string;
  kind?: "ClusterProperty";
  metadata: V1ObjectMeta;
  spec: { value: string };
}

/** ServiceExport condition types and reasons (v1beta1 constants). */
export const ExportCondition = {
  Valid: "Valid",
  Ready: "Ready",
  Conflict: "Conflict",
} as const;

export const ExportReason = {
  Valid: "Valid",
  NoService: "NoService",
  InvalidServiceType: "InvalidServiceType",
  Exported: "Exported",
  Pending: "Pending",
  Failed: "Failed",
  NoConflicts: "NoConflicts",
  PortConflict: "PortConflict",
  TypeConflict: "TypeConflict",
  SessionAffinityConflict: "SessionAffinityConflict",
  SessionAffinityConfigConflict: "SessionAffinityConfigConflict",
  LabelsConflict: "LabelsConflict",
  AnnotationsConflict: "AnnotationsConflict",
  InternalTrafficPolicyConflict: "InternalTrafficPolicyConflict",
  TrafficDistributionConflict: "TrafficDistributionConflict",
  IPFamilyConflict: "IPFamilyConflict",
} as const;
export type ExportReason = (typeof ExportReason)[keyof typeof ExportReason];
