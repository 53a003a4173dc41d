import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { V1EndpointSlice, V1Service } from "@kubernetes/client-node";
import type { KubernetesObject } from "@kubernetes/client-node";
import type { ServiceExport, ServiceImport } from "../api/mcs.js";
import {
  ANNOTATION_ALLOWED_CLUSTERS,
  ANNOTATION_MODE,
  ANNOTATION_UDP_FLOW_TIMEOUT,
  parsePeers,
  PEERS_KEY,
  routingTableFrom,
  type MemberRoutingState,
  type TrafficPolicy,
} from "./kube-routes.js";
import { importedSlice } from "../api/fixtures.js";

const importOf = (name: string, ips: string[], type: "ClusterSetIP" | "Headless" = "ClusterSetIP") =>
  ({
    metadata: { name, namespace: "shop" },
    spec: {
      type,
      ips,
      ports: [
        { name: "http", protocol: "TCP", port: 80 },
        { name: "dns", protocol: "UDP", port: 53 },
      ],
    },
  }) as ServiceImport & KubernetesObject;

/** An imported slice with the import's UDP port too (5353 on the pods). */
const mcsSlice = (...args: Parameters<typeof importedSlice>): V1EndpointSlice => {
  const slice = importedSlice(...args);
  slice.ports = [...(slice.ports ?? []), { name: "dns", protocol: "UDP", port: 5353 }];
  return slice;
};

const ownSlice = (service: string, addresses: string[]): V1EndpointSlice => ({
  addressType: "IPv4",
  metadata: { name: `${service}-abc`, namespace: "shop", labels: { "kubernetes.io/service-name": service } },
  ports: [{ name: "http", port: 9090 }],
  endpoints: addresses.map((a) => ({ addresses: [a], conditions: { ready: true } })),
});

const state = (over: Partial<MemberRoutingState>): MemberRoutingState => ({
  clusterId: "west",
  serviceImports: [],
  endpointSlices: [],
  serviceExports: [],
  services: [],
  trafficPolicies: [],
  peers: [],
  listenOn: "cluster-set-ip",
  ...over,
});

describe("routingTableFrom", () => {
  it("routes each TCP and UDP port of a ClusterSetIP import on its VIP, counting ready endpoints per remote cluster and keeping local ones", () => {
    const table = routingTableFrom(
      state({
        serviceImports: [importOf("cart", ["fd00::1", "10.96.0.5"])],
        endpointSlices: [
          mcsSlice("cart", "east", [
            ["10.244.2.7", true],
            ["10.244.2.8", false],
          ]),
          mcsSlice("cart", "north", [["10.244.3.7", true]]),
          mcsSlice("cart", "west", [["10.244.1.7", true]]),
        ],
      }),
    );
    assert.deepEqual(table.imports, [
      {
        service: "shop/cart",
        port: 53,
        protocol: "UDP",
        listenHost: "10.96.0.5",
        listenPort: 53,
        clusters: [
          { clusterId: "east", readyEndpoints: 1 },
          { clusterId: "north", readyEndpoints: 1 },
        ],
        localEndpoints: [{ address: "10.244.1.7", port: 5353, ready: true }],
      },
      {
        service: "shop/cart",
        port: 80,
        listenHost: "10.96.0.5",
        listenPort: 80,
        clusters: [
          { clusterId: "east", readyEndpoints: 1 },
          { clusterId: "north", readyEndpoints: 1 },
        ],
        localEndpoints: [{ address: "10.244.1.7", port: 8080, ready: true }],
      },
    ]);
  });

  it("skips headless imports and imports without an IP yet; lets the gateway pick ports when not serving VIPs", () => {
    const imports = [
      importOf("db", [], "Headless"),
      importOf("pending", []),
      importOf("cart", ["10.96.0.5"]),
    ];
    assert.deepEqual(
      routingTableFrom(state({ serviceImports: imports })).imports.map((r) => `${r.service}:${r.port}`),
      ["shop/cart:53", "shop/cart:80"],
    );
    const picked = routingTableFrom(state({ serviceImports: imports, listenOn: "gateway-port" })).imports;
    assert.deepEqual(
      picked.map((r) => [r.service, r.port, r.listenPort, r.listenHost]),
      [
        ["shop/cart", 53, 0, undefined],
        ["shop/cart", 80, 0, undefined],
        ["shop/pending", 53, 0, undefined],
        ["shop/pending", 80, 0, undefined],
      ],
    );
  });

  it("listens on the ports the controller allocated, where this member's slices point at the gateway", () => {
    const annotated = importOf("cart", ["10.96.0.5"]);
    annotated.metadata.annotations = { "gateway.meridian.dev/listen-ports": "http/TCP=20004" };
    const routes = routingTableFrom(state({ serviceImports: [annotated] })).imports;
    assert.deepEqual(
      routes.map((r) => `${r.port}/${r.protocol ?? "TCP"}`),
      ["80/TCP"],
      "the UDP port has no allocated port: this member's slices do not point at the gateway for it",
    );
    const [route] = routes;
    assert.equal(route!.listenPort, 20004);
    assert.equal(route!.listenHost, undefined, "on the gateway's own address, not the VIP");
  });

  it("gives an import's UDP routes its own flow timeout, and names an import whose timeout is not one", () => {
    const short = importOf("dns", ["10.96.0.7"]);
    short.metadata.annotations = { [ANNOTATION_UDP_FLOW_TIMEOUT]: "2.5" };
    const bad = importOf("cart", ["10.96.0.5"]);
    bad.metadata.annotations = { [ANNOTATION_UDP_FLOW_TIMEOUT]: "soon" };
    const problems: string[] = [];
    const routes = routingTableFrom(state({ serviceImports: [short, bad] }), problems).imports;
    assert.deepEqual(
      routes.map((r) => [`${r.service}:${r.port}/${r.protocol ?? "TCP"}`, r.udpFlowIdleMs]),
      [
        ["shop/cart:53/UDP", undefined],
        ["shop/cart:80/TCP", undefined],
        ["shop/dns:53/UDP", 2500],
        ["shop/dns:80/TCP", undefined],
      ],
    );
    assert.deepEqual(problems, [
      `ServiceImport shop/cart: ${ANNOTATION_UDP_FLOW_TIMEOUT} is "soon", not a number of seconds above 0 ` +
        "and at most 86400; its UDP flows use the gateway's --udp-flow-timeout",
    ]);
    for (const value of ["0", "-1", "", "86401"]) {
      bad.metadata.annotations = { [ANNOTATION_UDP_FLOW_TIMEOUT]: value };
      const more: string[] = [];
      routingTableFrom(state({ serviceImports: [bad] }), more);
      assert.equal(more.length, 1, `"${value}" is refused`);
    }
  });

  it("leaves flat-mode imports to the pod network", () => {
    const flat = importOf("direct", ["10.96.0.6"]);
    flat.metadata.annotations = { [ANNOTATION_MODE]: "flat" };
    const table = routingTableFrom(state({ serviceImports: [flat, importOf("cart", ["10.96.0.5"])] }));
    assert.deepEqual([...new Set(table.imports.map((r) => r.service))], ["shop/cart"]);
  });

  it("attaches the service's TrafficPolicy without its serviceRef", () => {
    const policy: TrafficPolicy = {
      metadata: { name: "p", namespace: "shop" },
      spec: { serviceRef: { name: "cart" }, locality: "None", weights: [{ cluster: "east", weight: 3 }] },
    };
    const [route] = routingTableFrom(
      state({ serviceImports: [importOf("cart", ["10.96.0.5"])], trafficPolicies: [policy] }),
    ).imports;
    assert.deepEqual(route!.policy, { locality: "None", weights: [{ cluster: "east", weight: 3 }] });
  });

  it("exports each TCP and UDP port of an exported Service with Kubernetes' own endpoints, and the allow list from the annotation", () => {
    const svc: V1Service = {
      metadata: { name: "cart", namespace: "shop" },
      spec: {
        ports: [
          { name: "http", port: 80, targetPort: 9090 },
          { name: "dns", port: 53, protocol: "UDP", targetPort: "dns" },
          { name: "signal", port: 2905, protocol: "SCTP" },
        ],
      },
    };
    const exp = {
      metadata: {
        name: "cart",
        namespace: "shop",
        annotations: { [ANNOTATION_ALLOWED_CLUSTERS]: "north, east," },
      },
      spec: {},
    } as ServiceExport & KubernetesObject;
    const orphan = { metadata: { name: "gone", namespace: "shop" }, spec: {} } as ServiceExport &
      KubernetesObject;
    const table = routingTableFrom(
      state({
        services: [svc],
        serviceExports: [exp, orphan],
        endpointSlices: [ownSlice("cart", ["10.244.1.9"]), mcsSlice("cart", "east", [["10.244.2.7", true]])],
      }),
    );
    assert.deepEqual(table.exports, [
      {
        service: "shop/cart",
        port: 53,
        protocol: "UDP",
        // The slice has no "dns" port, and its only port is TCP: the service port is the best guess.
        endpoints: [{ address: "10.244.1.9", port: 53, ready: true }],
        allow: [{ cluster: "north" }, { cluster: "east" }],
      },
      {
        service: "shop/cart",
        port: 80,
        endpoints: [{ address: "10.244.1.9", port: 9090, ready: true }],
        allow: [{ cluster: "north" }, { cluster: "east" }],
      },
    ]);
  });

  it("reads cluster/namespace items of the allow list, and names the ServiceExport of a malformed one", () => {
    const svc: V1Service = { metadata: { name: "cart", namespace: "shop" }, spec: { ports: [{ port: 80 }] } };
    const exp = {
      metadata: {
        name: "cart",
        namespace: "shop",
        annotations: { [ANNOTATION_ALLOWED_CLUSTERS]: "north/web, north/api, East/x" },
      },
      spec: {},
    } as ServiceExport & KubernetesObject;
    const problems: string[] = [];
    const table = routingTableFrom(state({ services: [svc], serviceExports: [exp] }), problems);
    assert.deepEqual(table.exports[0]!.allow, [{ cluster: "north", namespaces: ["web", "api"] }]);
    assert.deepEqual(problems, [
      'ServiceExport shop/cart: gateway.meridian.dev/allowed-clusters has "East/x", which allow nothing ' +
        "(write a cluster ID, cluster/namespace, or * for every cluster)",
    ]);
  });

  it("drops this cluster from the peers", () => {
    const peers = [
      { clusterId: "west", host: "172.31.0.11", port: 15443 },
      { clusterId: "east", host: "172.31.0.12", port: 15443 },
    ];
    assert.deepEqual(
      routingTableFrom(state({ peers })).peers.map((p) => p.clusterId),
      ["east"],
    );
  });
});

describe("parsePeers", () => {
  it("reads the peer list, and says what is wrong with a bad one", () => {
    const good = JSON.stringify([{ clusterId: "east", host: "172.31.0.12", port: 15443 }]);
    assert.equal(parsePeers({ data: { [PEERS_KEY]: good } }).peers.length, 1);
    assert.deepEqual(parsePeers(undefined), { peers: [] });
    assert.match(parsePeers({ data: { [PEERS_KEY]: "{oops" } }).error!, /not JSON/);
    const bad = JSON.stringify([{ clusterId: "east", host: "", port: 70000 }]);
    assert.match(
      parsePeers({ data: { [PEERS_KEY]: bad } }).error!,
      /peers\[0\]\.host: required.*peers\[0\]\.port/,
    );
  });
});
