/**
 * Test support (not used at run time): builders for ServiceImports and MCS EndpointSlices, and the
 * zone the resolver, wire and server tests share. The data mirrors the CoreDNS multicluster handler
 * fixtures named in `mcs-api.md` §4.2 (hdls1, svc-dual-stack, …) so expectations can be compared.
 */
import type { V1EndpointSlice } from "@kubernetes/client-node";
import dnsPacket from "dns-packet";
import type { OptAnswer } from "dns-packet";
import { LABEL_SERVICE_NAME, LABEL_SOURCE_CLUSTER } from "../api/mcs.js";
import type { ServiceImport, ServiceImportPort } from "../api/mcs.js";
import { ClusterSetZone } from "./zone.js";

/** The fixed clock of {@link buildFixtureZone}: 2017-07-06T13:30:23Z, CoreDNS's fixture serial. */
export const FIXTURE_SERIAL = 1499347823;

/** Builds a ServiceImport. */
export function serviceImport(
  namespace: string,
  name: string,
  type: "ClusterSetIP" | "Headless",
  ports: ServiceImportPort[],
  ips: string[] = [],
): ServiceImport {
  return { metadata: { namespace, name }, spec: { type, ports, ...(ips.length > 0 ? { ips } : {}) } };
}

/** One endpoint of {@link endpointSlice}. `ready` undefined means "condition unset". */
export interface FixtureEndpoint {
  readonly addresses: string[];
  readonly hostname?: string;
  readonly ready?: boolean;
  readonly podName?: string;
}

/** Builds an MCS EndpointSlice for `service` from cluster `clusterId`. */
export function endpointSlice(
  namespace: string,
  name: string,
  service: string,
  clusterId: string,
  endpoints: FixtureEndpoint[],
  ports: { name?: string; port?: number; protocol?: string }[] = [],
  addressType = "IPv4",
): V1EndpointSlice {
  return {
    addressType,
    metadata: {
      namespace,
      name,
      labels: { [LABEL_SERVICE_NAME]: service, [LABEL_SOURCE_CLUSTER]: clusterId },
    },
    endpoints: endpoints.map((e) => ({
      addresses: e.addresses,
      ...(e.hostname ? { hostname: e.hostname } : {}),
      ...(e.ready === undefined ? {} : { conditions: { ready: e.ready } }),
      ...(e.podName ? { targetRef: { kind: "Pod", name: e.podName, namespace } } : {}),
    })),
    ports,
  };
}

const http = [{ name: "http", protocol: "TCP" as const, port: 80 }];
const slicePortHttp = [{ name: "http", port: 80, protocol: "TCP" }];

/**
 * A synced zone with namespaces `testns` and `demo` and:
 * - `svc1` (VIP 10.0.0.1), `svc6` (1234:abcd::1), `svc-dual-stack` (10.0.0.3 + 10::3), all http/80;
 * - `svc-two-ports` (10.0.0.4; tcp/42/TCP + udp/42/UDP), `svc-no-ports` (VIP, zero ports),
 *   `svc-no-ips` (http/80, no VIP);
 * - headless `hdls1` in cluster `clusterid`: 172.0.0.2, 172.0.0.3, 172.0.0.4 + 172.0.0.5 (both
 *   hostname `dup-name`), 5678:abcd::1, 5678:abcd::2 (separate IPv6 slice), plus a not-ready
 *   172.0.0.9; port http/80/TCP;
 * - headless `hdlsprtls` (172.0.0.20, slice without ports), `hdls-notready` (only not-ready
 *   endpoints), `hdls-multi` (c1: 10.1.0.1 `web-0`; c2: 10.2.0.1 `web-0`, 10.2.0.2);
 * - `demo/whoami` (10.96.0.10, http/80);
 * - `absent/orphan`: an import whose namespace does not exist locally.
 */
export function buildFixtureZone(): ClusterSetZone {
  const zone = new ClusterSetZone({ now: () => FIXTURE_SERIAL * 1000 });
  for (const ns of ["testns", "demo"]) zone.upsertNamespace(ns);
  zone.upsertServiceImport(serviceImport("testns", "svc1", "ClusterSetIP", http, ["10.0.0.1"]));
  zone.upsertServiceImport(serviceImport("testns", "svc6", "ClusterSetIP", http, ["1234:abcd::1"]));
  zone.upsertServiceImport(
    serviceImport("testns", "svc-dual-stack", "ClusterSetIP", http, ["10.0.0.3", "10::3"]),
  );
  zone.upsertServiceImport(
    serviceImport(
      "testns",
      "svc-two-ports",
      "ClusterSetIP",
      [
        { name: "tcp", protocol: "TCP", port: 42 },
        { name: "udp", protocol: "UDP", port: 42 },
      ],
      ["10.0.0.4"],
    ),
  );
  zone.upsertServiceImport(serviceImport("testns", "svc-no-ports", "ClusterSetIP", [], ["10.0.0.5"]));
  zone.upsertServiceImport(serviceImport("testns", "svc-no-ips", "ClusterSetIP", http));
  zone.upsertServiceImport(serviceImport("testns", "hdls1", "Headless", http));
  zone.upsertEndpointSlice(
    endpointSlice(
      "testns",
      "hdls1-v4",
      "hdls1",
      "clusterid",
      [
        { addresses: ["172.0.0.2"] },
        { addresses: ["172.0.0.3"], ready: true },
        { addresses: ["172.0.0.4"], hostname: "dup-name" },
        { addresses: ["172.0.0.5"], hostname: "dup-name" },
        { addresses: ["172.0.0.9"], ready: false },
      ],
      slicePortHttp,
    ),
  );
  zone.upsertEndpointSlice(
    endpointSlice(
      "testns",
      "hdls1-v6",
      "hdls1",
      "clusterid",
      [{ addresses: ["5678:abcd::1"] }, { addresses: ["5678:abcd::2"] }],
      slicePortHttp,
      "IPv6",
    ),
  );
  zone.upsertServiceImport(serviceImport("testns", "hdlsprtls", "Headless", []));
  zone.upsertEndpointSlice(
    endpointSlice("testns", "hdlsprtls-1", "hdlsprtls", "clusterid", [{ addresses: ["172.0.0.20"] }]),
  );
  zone.upsertServiceImport(serviceImport("testns", "hdls-notready", "Headless", http));
  zone.upsertEndpointSlice(
    endpointSlice(
      "testns",
      "hdls-notready-1",
      "hdls-notready",
      "clusterid",
      [{ addresses: ["172.0.1.1"], ready: false }],
      slicePortHttp,
    ),
  );
  zone.upsertServiceImport(serviceImport("testns", "hdls-multi", "Headless", http));
  zone.upsertEndpointSlice(
    endpointSlice(
      "testns",
      "hdls-multi-c1",
      "hdls-multi",
      "c1",
      [{ addresses: ["10.1.0.1"], hostname: "web-0" }],
      slicePortHttp,
    ),
  );
  zone.upsertEndpointSlice(
    endpointSlice(
      "testns",
      "hdls-multi-c2",
      "hdls-multi",
      "c2",
      [{ addresses: ["10.2.0.1"], hostname: "web-0" }, { addresses: ["10.2.0.2"] }],
      slicePortHttp,
    ),
  );
  zone.upsertServiceImport(serviceImport("demo", "whoami", "ClusterSetIP", http, ["10.96.0.10"]));
  zone.upsertServiceImport(serviceImport("absent", "orphan", "ClusterSetIP", http, ["10.0.0.99"]));
  zone.setSynced(true);
  return zone;
}

/** Adds headless `testns/big` with `count` ready IPv4 endpoints (10.50.x.y), for size/TC tests. */
export function addBigHeadless(zone: ClusterSetZone, count: number): void {
  zone.upsertServiceImport(serviceImport("testns", "big", "Headless", http));
  const endpoints: FixtureEndpoint[] = [];
  for (let i = 0; i < count; i++)
    endpoints.push({ addresses: [`10.50.${Math.floor(i / 250)}.${(i % 250) + 1}`] });
  zone.upsertEndpointSlice(endpointSlice("testns", "big-1", "big", "clusterid", endpoints, slicePortHttp));
}

/** An OPT pseudo-record for dns-packet's encoder. */
export function ednsOpt(udpPayloadSize: number, dnssecOk: boolean): OptAnswer {
  const flags = dnssecOk ? dnsPacket.DNSSEC_OK : 0;
  return {
    type: "OPT",
    name: ".",
    udpPayloadSize,
    extendedRcode: 0,
    ednsVersion: 0,
    flags,
    flag_do: dnssecOk,
    options: [],
  };
}
