/** Test fixtures for MCS objects, shared by the unit tests of every component that reads them. */
import type { V1EndpointSlice } from "@kubernetes/client-node";
import { LABEL_SERVICE_NAME, LABEL_SOURCE_CLUSTER } from "./mcs.js";

/** An imported EndpointSlice in namespace "shop": one endpoint per [address, ready]. */
export const importedSlice = (
  service: string,
  source: string,
  addresses: Array<[string, boolean]>,
  port = 8080,
): V1EndpointSlice => ({
  addressType: "IPv4",
  metadata: {
    name: `${service}-${source}`,
    namespace: "shop",
    labels: {
      [LABEL_SERVICE_NAME]: service,
      [LABEL_SOURCE_CLUSTER]: source,
      "kubernetes.io/service-name": `derived-${service}`,
    },
  },
  ports: [{ name: "http", port }],
  endpoints: addresses.map(([a, ready]) => ({ addresses: [a], conditions: { ready } })),
});
