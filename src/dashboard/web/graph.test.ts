import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { crossings, flowGraph, layoutGraph, type FlowGraph } from "./graph.js";
import type { DashboardView, Health, ServiceView } from "./view.js";

function service(
  namespace: string,
  name: string,
  exporters: string[],
  importers: string[],
  health: Health = "healthy",
): ServiceView {
  return {
    namespace,
    name,
    ports: ["8080/TCP"],
    exporters: exporters.map((cluster) => ({ cluster, flat: false })),
    importers: importers.map((cluster) => ({
      cluster,
      type: "ClusterSetIP",
      ips: ["10.96.0.9"],
      sourceClusters: exporters,
      endpoints: [],
      routing: [],
    })),
    policies: [],
    conflicts: [],
    health,
    healthReason: "",
  };
}

function view(clusters: string[], services: ServiceView[]): DashboardView {
  return {
    generatedAt: "2026-11-22T10:00:00Z",
    hub: { reachable: true, namespace: "meridian-system" },
    clusters: clusters.map((name) => ({
      name,
      clusterId: name,
      gatewayAddresses: [],
      health: name === "c3" ? "unhealthy" : "healthy",
      healthReason: "",
      connection: { state: "connected" },
      exports: 0,
      imports: 0,
      conflicts: 0,
    })),
    services,
    gateways: [],
    dns: [],
  };
}

const all = { maxServiceNodes: 40, expanded: new Set<string>(), filter: "" };

describe("flowGraph", () => {
  it("links exporters to the service and the service to its importers", () => {
    const g = flowGraph(view(["east", "west"], [service("shop", "cart", ["east"], ["east", "west"])]), all);
    assert.deepEqual(g.edges.map((e) => `${e.from} ${e.to} ${e.count}`).sort(), [
      "exporter:east service:shop/cart 1",
      "service:shop/cart importer:east 1",
      "service:shop/cart importer:west 1",
    ]);
    const svc = g.nodes.find((n) => n.id === "service:shop/cart")!;
    assert.equal(svc.href, "#/services/shop/cart");
    assert.equal(svc.detail, "10.96.0.9");
    assert.equal(g.nodes.find((n) => n.id === "exporter:east")!.detail, "1 exports");
  });

  it("folds services into namespaces beyond the limit, and unfolds one on request", () => {
    const services = Array.from({ length: 60 }, (_, i) =>
      service(i < 30 ? "shop" : "infra", `s${i}`, ["east"], ["west"], i === 42 ? "unhealthy" : "healthy"),
    );
    const folded = flowGraph(view(["east", "west"], services), all);
    const middle = folded.nodes.filter((n) => n.column === 1);
    assert.deepEqual(middle.map((n) => n.label).sort(), ["infra/*", "shop/*"]);
    assert.equal(middle.find((n) => n.label === "infra/*")!.health, "unhealthy", "the worst member's health");
    assert.equal(
      folded.edges.find((e) => e.from === "exporter:east" && e.to === "namespace:shop")!.count,
      30,
    );
    const unfolded = flowGraph(view(["east", "west"], services), { ...all, expanded: new Set(["shop"]) });
    assert.equal(unfolded.nodes.filter((n) => n.kind === "service").length, 30);
    assert.equal(unfolded.nodes.filter((n) => n.kind === "namespace").length, 1);
  });

  it("filters by namespace/name and carries cluster health onto cluster nodes", () => {
    const g = flowGraph(
      view(["c1", "c3"], [service("shop", "cart", ["c1"], ["c3"]), service("shop", "web", ["c3"], ["c1"])]),
      { ...all, filter: "CART" },
    );
    assert.deepEqual(g.nodes.map((n) => n.id).sort(), ["exporter:c1", "importer:c3", "service:shop/cart"]);
    assert.equal(g.nodes.find((n) => n.id === "importer:c3")!.health, "unhealthy");
  });
});

describe("layoutGraph", () => {
  it("places nodes in three columns without overlaps", () => {
    const services = Array.from({ length: 12 }, (_, i) =>
      service("ns", `s${i}`, [`c${i % 3}`], ["c0", "c1", "c2"]),
    );
    const layout = layoutGraph(flowGraph(view(["c0", "c1", "c2"], services), all));
    for (const col of [0, 1, 2]) {
      const ys = layout.nodes
        .filter((n) => n.column === col)
        .map((n) => [n.y, n.y + n.height] as const)
        .sort((a, b) => a[0] - b[0]);
      for (let i = 1; i < ys.length; i++) assert.ok(ys[i]![0] >= ys[i - 1]![1], `column ${col} overlaps`);
    }
    for (const n of layout.nodes) {
      assert.ok(n.x >= 0 && n.x + n.width <= layout.width);
      assert.ok(n.y >= 0 && n.y + n.height <= layout.height);
    }
    assert.equal(layout.edges.length, 12 + 36);
  });

  it("orders columns to remove avoidable crossings", () => {
    // Exporter a serves z, exporter b serves y: alphabetical order would cross, barycentres do not.
    const g: FlowGraph = {
      nodes: [
        {
          id: "exporter:a",
          kind: "exporter",
          column: 0,
          label: "a",
          detail: "",
          health: "healthy",
          href: "",
        },
        {
          id: "exporter:b",
          kind: "exporter",
          column: 0,
          label: "b",
          detail: "",
          health: "healthy",
          href: "",
        },
        { id: "service:y", kind: "service", column: 1, label: "y", detail: "", health: "healthy", href: "" },
        { id: "service:z", kind: "service", column: 1, label: "z", detail: "", health: "healthy", href: "" },
      ],
      edges: [
        { from: "exporter:a", to: "service:z", count: 1, health: "healthy" },
        { from: "exporter:b", to: "service:y", count: 1, health: "healthy" },
      ],
    };
    const alphabetical = new Map([
      ["exporter:a", 0],
      ["exporter:b", 1],
      ["service:y", 0],
      ["service:z", 1],
    ]);
    assert.equal(crossings(g, alphabetical), 1);
    const layout = layoutGraph(g);
    const order = new Map(layout.nodes.map((n) => [n.id, n.y]));
    assert.equal(crossings(g, order), 0);
  });

  it("keeps the exporters' side uncrossed when every service goes to every importer", () => {
    const everyone = ["east", "north", "west"];
    const g = flowGraph(
      view(everyone, [
        service("demo", "backend", ["east", "north"], everyone),
        service("shop", "catalog", ["north"], everyone),
        service("shop", "payments", ["east"], everyone),
      ]),
      all,
    );
    const layout = layoutGraph(g);
    const order = new Map(layout.nodes.map((n) => [n.id, n.y]));
    const exporterSide = { nodes: g.nodes, edges: g.edges.filter((e) => e.from.startsWith("exporter:")) };
    assert.equal(crossings(exporterSide, order), 0);
  });

  it("stays readable at 10 clusters × 100 services: folded to namespaces, a bounded canvas", () => {
    const clusters = Array.from({ length: 10 }, (_, i) => `cluster-${i}`);
    const services: ServiceView[] = [];
    for (let c = 0; c < 10; c++)
      for (let s = 0; s < 100; s++)
        services.push(
          service(
            `team-${s % 10}`,
            `svc-${c}-${s}`,
            [clusters[c]!],
            clusters.filter((x) => x !== clusters[c]),
          ),
        );
    const layout = layoutGraph(flowGraph(view(clusters, services), all));
    assert.equal(layout.nodes.length, 10 + 10 + 10, "10 exporters, 10 namespaces, 10 importers");
    assert.ok(layout.height < 800, `fits a screen: ${layout.height}px`);
    assert.ok(layout.edges.length <= 200);
    // Each namespace holds 10 services of each cluster, each imported by the 9 other clusters.
    const edge = (from: string, to: string) =>
      layout.edges.find((e) => e.from === from && e.to === to)?.count;
    assert.equal(
      edge("exporter:cluster-0", "namespace:team-3"),
      10,
      "edge weights carry how many services flow",
    );
    assert.equal(edge("namespace:team-3", "importer:cluster-0"), 90);
  });
});
