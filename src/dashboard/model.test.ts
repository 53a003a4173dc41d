import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Cluster } from "../api/meridian.js";
import type { ServiceExport, ServiceImport } from "../api/mcs.js";
import type { TrafficPolicy } from "../gateway/kube-routes.js";
import { importedSlice } from "../api/fixtures.js";
import {
  counterViews,
  dashboardView,
  policySummary,
  reachabilityOf,
  type ObservedClusterset,
  type ObservedMember,
} from "./model.js";

const NOW = new Date("2026-11-22T10:00:00Z");
const T = "2026-11-22T09:00:00Z";

const cluster = (name: string, ready: "True" | "False", message = "ok"): Cluster => ({
  metadata: { name, namespace: "meridian-system" },
  spec: {
    clusterID: name,
    credentials: { secretName: `${name}-kubeconfig` },
    locality: { region: "eu", zone: `eu-${name}` },
  },
  status: {
    conditions: [
      {
        type: "Ready",
        status: ready,
        reason: ready === "True" ? "Ready" : "APIServerUnreachable",
        message,
        lastTransitionTime: new Date(T),
      },
    ],
    exports: 7,
    imports: 9,
  },
});

const exp = (
  name: string,
  conditions: Record<string, [string, string, string]>,
  annotations?: Record<string, string>,
): ServiceExport => ({
  metadata: { name, namespace: "shop", ...(annotations ? { annotations } : {}) },
  status: {
    conditions: Object.entries(conditions).map(([type, [status, reason, message]]) => ({
      type,
      status,
      reason,
      message,
      lastTransitionTime: new Date(T),
    })),
  },
});

const imp = (name: string, sources: string[]): ServiceImport => ({
  metadata: { name, namespace: "shop" },
  spec: {
    type: "ClusterSetIP",
    ips: ["10.96.200.5"],
    ports: [{ name: "http", port: 8080, protocol: "TCP" }],
  },
  status: { clusters: sources.map((c) => ({ cluster: c })) },
});

const slice = (service: string, source: string, ready: boolean[]) =>
  importedSlice(
    service,
    source,
    ready.map((r, i) => [`10.0.0.${i + 1}`, r]),
  );

const valid: Record<string, [string, string, string]> = {
  Valid: ["True", "Valid", ""],
  Ready: ["True", "Exported", "imported into west"],
  Conflict: ["False", "NoConflicts", ""],
};

function member(name: string, over: Partial<ObservedMember> = {}): ObservedMember {
  return {
    name,
    cluster: cluster(name, "True"),
    connection: { state: "connected" },
    exports: [],
    imports: [],
    slices: [],
    policies: [],
    namespaces: ["default", "shop"],
    ...over,
  };
}

describe("dashboardView", () => {
  it("shows a service exported by two clusters and imported by a third, with endpoints by source", () => {
    const v = dashboardView({
      now: NOW,
      hub: { reachable: true, namespace: "meridian-system" },
      members: [
        member("east", { exports: [exp("cart", valid)] }),
        member("north", { exports: [exp("cart", valid)] }),
        member("west", {
          imports: [imp("cart", ["east", "north"])],
          slices: [slice("cart", "east", [true, true]), slice("cart", "north", [false])],
          gateway: {
            clusterId: "west",
            atLimit: { outbound: "open-files" },
            peers: [{ clusterId: "east", available: true, probe: "ok", consecutiveFailures: 0 }],
            services: [
              {
                service: "shop/cart",
                port: 8080,
                clusters: [
                  {
                    clusterId: "east",
                    tier: 0,
                    weight: 1,
                    usable: true,
                    sharePercent: 100,
                    readyEndpoints: 2,
                  },
                ],
              },
            ],
          },
        }),
      ],
    });
    assert.equal(v.services.length, 1);
    const cart = v.services[0]!;
    assert.deepEqual(
      cart.exporters.map((e) => e.cluster),
      ["east", "north"],
    );
    assert.deepEqual(cart.importers[0]!.endpoints, [
      { sourceCluster: "east", ready: 2, total: 2 },
      { sourceCluster: "north", ready: 0, total: 1 },
    ]);
    assert.deepEqual(cart.ports, ["http:8080/TCP"]);
    assert.equal(cart.importers[0]!.routing[0]!.targets[0]!.sharePercent, 100);
    assert.equal(cart.health, "degraded", "north exports it but has no ready endpoint");
    assert.match(cart.healthReason, /no ready endpoints from north/);
    assert.equal(v.gateways[0]!.services, 1);
    assert.deepEqual(
      v.gateways[0]!.atLimit,
      { outbound: "open-files" },
      "the gateway's limit reaches the page",
    );
  });

  it("puts a conflict first, with its message, and counts it on the cluster", () => {
    const conflicting = {
      ...valid,
      Conflict: [
        "True",
        "PortConflict",
        "port 8080 is TCP in east but UDP in north; east's (oldest) wins",
      ] as [string, string, string],
    };
    const v = dashboardView({
      now: NOW,
      hub: { reachable: true, namespace: "meridian-system" },
      members: [
        member("east", { exports: [exp("cart", conflicting)] }),
        member("north", { exports: [exp("cart", conflicting)] }),
      ],
    });
    const cart = v.services[0]!;
    assert.equal(cart.conflicts.length, 2);
    assert.equal(cart.conflicts[0]!.reason, "PortConflict");
    assert.equal(cart.health, "degraded");
    assert.match(cart.healthReason, /port 8080 is TCP in east but UDP in north/);
    assert.equal(v.clusters.find((c) => c.name === "east")!.conflicts, 1);
  });

  it("marks an invalid export unhealthy with the controller's message", () => {
    const v = dashboardView({
      now: NOW,
      hub: { reachable: true, namespace: "meridian-system" },
      members: [
        member("east", {
          exports: [exp("ghost", { Valid: ["False", "NoService", "Service shop/ghost does not exist"] })],
        }),
      ],
    });
    assert.equal(v.services[0]!.health, "unhealthy");
    assert.equal(v.services[0]!.healthReason, "Service shop/ghost does not exist");
  });

  it("shows an unreachable member instead of failing, with counts from the hub", () => {
    const v = dashboardView({
      now: NOW,
      hub: { reachable: true, namespace: "meridian-system" },
      members: [
        member("east", {
          cluster: cluster("east", "False", "API server unreachable since 09:59: connect ECONNREFUSED"),
          connection: { state: "unreachable", since: T, error: "connect ECONNREFUSED 10.0.0.1:6443" },
        }),
        member("west"),
      ],
    });
    const east = v.clusters.find((c) => c.name === "east")!;
    assert.equal(east.health, "unhealthy");
    assert.match(east.healthReason, /unreachable since 09:59/);
    assert.equal(east.exports, 7, "from the Cluster's status, as the dashboard cannot list them");
    assert.equal(v.clusters.find((c) => c.name === "west")!.health, "healthy");
  });

  it("says when only the dashboard cannot reach a member the controller reaches", () => {
    const v = dashboardView({
      now: NOW,
      hub: { reachable: true, namespace: "meridian-system" },
      members: [member("east", { connection: { state: "unreachable", since: T, error: "timeout" } })],
    });
    assert.equal(v.clusters[0]!.health, "degraded");
    assert.match(v.clusters[0]!.healthReason, /the dashboard does not: timeout/);
  });

  it("shows a member whose credentials are unusable as unhealthy with the reason", () => {
    const v = dashboardView({
      now: NOW,
      hub: { reachable: true, namespace: "meridian-system" },
      members: [
        member("east", {
          connection: {
            state: "no-credentials",
            error: "Secret meridian-system/east-kubeconfig does not exist",
          },
        }),
      ],
    });
    assert.equal(v.clusters[0]!.health, "unhealthy");
    assert.match(v.clusters[0]!.healthReason, /does not exist/);
  });

  it("reads access rules, flat mode, policies and the controller's propagation time", () => {
    const policy: TrafficPolicy = {
      apiVersion: "meridian.dev/v1alpha1",
      kind: "TrafficPolicy",
      metadata: { name: "cart", namespace: "shop" },
      spec: {
        serviceRef: { name: "cart" },
        failover: [
          {
            clusters: [
              { cluster: "east", weight: 80 },
              { cluster: "north", weight: 20 },
            ],
          },
          { clusters: [{ cluster: "south" }] },
        ],
      },
    };
    const v = dashboardView({
      now: NOW,
      hub: { reachable: true, namespace: "meridian-system" },
      members: [
        member("east", {
          exports: [
            {
              ...exp("cart", valid, { "gateway.meridian.dev/allowed-clusters": "west, north" }),
              spec: { exportedAnnotations: { "gateway.meridian.dev/mode": "flat" } },
            },
          ],
        }),
        member("west", {
          policies: [policy],
          imports: [imp("cart", ["east"])],
          slices: [slice("cart", "east", [true])],
        }),
      ],
      propagation: new Map([["shop/cart", { seconds: 0.42, at: T }]]),
    });
    const cart = v.services[0]!;
    assert.deepEqual(cart.exporters[0]!.allowedClusters, ["west", "north"]);
    assert.equal(cart.exporters[0]!.flat, true);
    assert.deepEqual(cart.policies, [
      {
        cluster: "west",
        name: "cart",
        summary: "locality PreferLocal; failover [east=80 north=20] → [south]",
      },
    ]);
    assert.deepEqual(cart.propagation, { lastSeconds: 0.42, at: T });
    assert.equal(cart.health, "healthy");
  });

  it("flags a service whose every exporter has no ready endpoint", () => {
    const v = dashboardView({
      now: NOW,
      hub: { reachable: true, namespace: "meridian-system" },
      members: [
        member("east", { exports: [exp("cart", valid)] }),
        member("west", { imports: [imp("cart", ["east"])], slices: [slice("cart", "east", [false, false])] }),
      ],
    });
    assert.equal(v.services[0]!.health, "unhealthy");
    assert.equal(v.services[0]!.healthReason, "no ready endpoints in any exporting cluster");
  });
});

describe("policySummary", () => {
  it("names weights and excluded clusters", () => {
    const p: TrafficPolicy = {
      metadata: { name: "p", namespace: "shop" },
      spec: {
        serviceRef: { name: "cart" },
        locality: "None",
        weights: [{ cluster: "east", weight: 3 }, { cluster: "north" }],
        unlisted: "Exclude",
      },
    };
    assert.equal(policySummary(p), "locality None; weights east=3 north=1; unlisted clusters excluded");
  });
});

describe("counterViews", () => {
  it("derives per-second rates from the two latest reports", () => {
    const views = counterViews([
      { at: "2026-11-22T10:00:00Z", counters: { queries: 100, "queries{NXDOMAIN}": 10 } },
      { at: "2026-11-22T10:00:10Z", counters: { queries: 600, "queries{NXDOMAIN}": 10 } },
    ]);
    assert.deepEqual(views, [
      { name: "queries", total: 600, perSecond: 50 },
      { name: "queries{NXDOMAIN}", total: 10, perSecond: 0 },
    ]);
  });

  it("gives no rate across a restart (a counter that went down) or from one report", () => {
    const restarted = counterViews([
      { at: "2026-11-22T10:00:00Z", counters: { queries: 900 } },
      { at: "2026-11-22T10:00:10Z", counters: { queries: 5 } },
    ]);
    assert.deepEqual(restarted, [{ name: "queries", total: 5 }]);
    assert.deepEqual(counterViews([{ at: "2026-11-22T10:00:00Z", counters: { queries: 1 } }]), [
      { name: "queries", total: 1 },
    ]);
    assert.equal(counterViews(undefined), undefined);
  });
});

describe("reachabilityOf", () => {
  const routed = (from: string, to: string) => ({
    clusterId: from,
    peers: [{ clusterId: to, available: true, probe: "healthy", consecutiveFailures: 0 }],
    services: [
      {
        service: "shop/cart",
        port: 8080,
        clusters: [{ clusterId: to, tier: 0, weight: 1, usable: true, sharePercent: 100, readyEndpoints: 1 }],
      },
    ],
  });

  it("judges each member as `meridian explain` does, naming the first broken step and the fix", () => {
    const observed: ObservedClusterset = {
      now: NOW,
      hub: { reachable: true, namespace: "meridian-system" },
      members: [
        member("east", {
          exports: [exp("cart", valid, { "gateway.meridian.dev/allowed-clusters": "north" })],
        }),
        member("north", {
          imports: [imp("cart", ["east"])],
          slices: [slice("cart", "east", [true])],
          gateway: routed("north", "east"),
        }),
        member("west", {
          imports: [imp("cart", ["east"])],
          slices: [slice("cart", "east", [true])],
          gateway: routed("west", "east"),
        }),
        member("south", { namespaces: ["default"] }),
      ],
    };
    const by = new Map(reachabilityOf(observed, "shop", "cart").map((r) => [r.cluster, r]));
    assert.equal(by.get("north")!.reachable, true);
    assert.equal(by.get("west")!.reachable, false);
    assert.equal(by.get("west")!.problem!.check, "access");
    assert.match(by.get("west")!.problem!.hint ?? "", /add west to gateway.meridian.dev\/allowed-clusters/);
    assert.equal(by.get("south")!.reachable, false);
    assert.match(by.get("south")!.problem!.detail, /namespace shop does not exist in south/);
  });

  it("leaves out members the dashboard cannot reach", () => {
    const observed: ObservedClusterset = {
      now: NOW,
      hub: { reachable: true, namespace: "meridian-system" },
      members: [
        member("east", { exports: [exp("cart", valid)] }),
        member("west", { connection: { state: "unreachable", since: T, error: "timeout" } }),
      ],
    };
    assert.deepEqual(
      reachabilityOf(observed, "shop", "cart").map((r) => r.cluster),
      ["east"],
    );
  });
});
