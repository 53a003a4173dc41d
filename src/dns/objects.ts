/**
 * Builders for the objects DNS reads, shaped as the mcs-controller writes them into a member: a
 * ServiceImport and its MCS EndpointSlices (one per source cluster). Used by the integration tests
 * and the CoreDNS comparison to create imports without running the controller.
 */
import type { V1EndpointSlice } from "@kubernetes/client-node";
import {
  LABEL_ENDPOINTSLICE_MANAGED_BY,
  LABEL_SERVICE_NAME,
  LABEL_SOURCE_CLUSTER,
  MCS_API_VERSION,
} from "../api/mcs.js";
import type { ServiceImport, ServiceImportPort, ServiceImportType } from "../api/mcs.js";

export const MCS_CONTROLLER_MANAGER = "mcs-controller.meridian.dev";

export function serviceImport(
  namespace: string,
  name: string,
  spec: { type?: ServiceImportType; ips?: string[]; ports: ServiceImportPort[] },
): ServiceImport {
  return {
    apiVersion: MCS_API_VERSION,
    kind: "ServiceImport",
    metadata: { name, namespace },
    spec: {
      type: spec.type ?? "ClusterSetIP",
      ports: spec.ports,
      ...(spec.ips ? { ips: spec.ips } : {}),
    },
  };
}

export interface SliceEndpoint {
  addresses: string[];
  hostname?: string;
  ready?: boolean;
}

export function mcsEndpointSlice(
  namespace: string,
  service: string,
  sourceCluster: string,
  options: {
    name?: string;
    addressType?: "IPv4" | "IPv6";
    ports?: { name?: string; protocol?: "TCP" | "UDP" | "SCTP"; port: number }[];
    endpoints: SliceEndpoint[];
  },
): V1EndpointSlice {
  return {
    apiVersion: "discovery.k8s.io/v1",
    kind: "EndpointSlice",
    metadata: {
      name: options.name ?? `${service}-${sourceCluster}-${(options.addressType ?? "IPv4").toLowerCase()}`,
      namespace,
      labels: {
        [LABEL_SERVICE_NAME]: service,
        [LABEL_SOURCE_CLUSTER]: sourceCluster,
        [LABEL_ENDPOINTSLICE_MANAGED_BY]: MCS_CONTROLLER_MANAGER,
      },
    },
    addressType: options.addressType ?? "IPv4",
    ...(options.ports ? { ports: options.ports } : {}),
    endpoints: options.endpoints.map((e) => ({
      addresses: e.addresses,
      ...(e.hostname ? { hostname: e.hostname } : {}),
      ...(e.ready === undefined ? {} : { conditions: { ready: e.ready } }),
    })),
  };
}
