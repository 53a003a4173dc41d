import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { gatewayStatusReport, parseGatewayStatus, portLabel, STATUS_KEY } from "./kube-status.js";
import type { ServiceRouting } from "./gateway.js";

const health = (available: boolean) => ({
  probe: available ? ("healthy" as const) : ("unhealthy" as const),
  available,
  rttMs: 0.731,
  ejectedForMs: 1234,
  consecutiveFailures: available ? 0 : 2,
});

describe("the gateway's status report", () => {
  it("keeps routing and health, sorted, with shares as whole percentages and nothing that changes on every probe", () => {
    const routing: ServiceRouting[] = [
      {
        service: "shop/web",
        port: 80,
        listenPort: 80,
        clusters: [
          {
            clusterId: "east",
            tier: 0,
            origin: "locality",
            weight: 2,
            usable: true,
            share: 2 / 3,
            readyEndpoints: 2,
            health: health(true),
          },
        ],
      },
      { service: "shop/api", port: 443, listenPort: 443, clusters: [] },
      { service: "shop/api", port: 443, protocol: "UDP", listenPort: 443, clusters: [] },
    ] as unknown as ServiceRouting[];
    const report = gatewayStatusReport("west", routing, [
      { clusterId: "north", ...health(false) },
      { clusterId: "east", ...health(true) },
    ]);
    assert.deepEqual(report, {
      clusterId: "west",
      peers: [
        { clusterId: "east", available: true, probe: "healthy", consecutiveFailures: 0 },
        { clusterId: "north", available: false, probe: "unhealthy", consecutiveFailures: 2 },
      ],
      services: [
        { service: "shop/api", port: 443, clusters: [] },
        { service: "shop/api", port: 443, protocol: "UDP", clusters: [] },
        {
          service: "shop/web",
          port: 80,
          clusters: [
            { clusterId: "east", tier: 0, weight: 2, usable: true, sharePercent: 67, readyEndpoints: 2 },
          ],
        },
      ],
    });
  });

  it("carries the limits the gateway has just refused connections at, and nothing when there are none", () => {
    assert.deepEqual(gatewayStatusReport("west", [], [], { outbound: "open-files" }), {
      clusterId: "west",
      atLimit: { outbound: "open-files" },
      peers: [],
      services: [],
    });
    assert.equal("atLimit" in gatewayStatusReport("west", [], [], {}), false);
  });

  it("labels a port for people: the number for TCP, with the protocol otherwise", () => {
    assert.equal(portLabel({ port: 80 }), "80");
    assert.equal(portLabel({ port: 80, protocol: "TCP" }), "80");
    assert.equal(portLabel({ port: 53, protocol: "UDP" }), "53/UDP");
  });

  it("reads a report back, and ignores a missing or broken one", () => {
    const report = { clusterId: "west", peers: [], services: [] };
    assert.deepEqual(parseGatewayStatus({ data: { [STATUS_KEY]: JSON.stringify(report) } }), report);
    assert.equal(parseGatewayStatus(undefined), undefined);
    assert.equal(parseGatewayStatus({ data: { [STATUS_KEY]: "{not json" } }), undefined);
  });
});
