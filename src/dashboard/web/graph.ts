/**
 * The export/import graph: exporting clusters on the left, services in the middle, importing
 * clusters on the right. It stays readable at 10 clusters × 100 services by folding services into
 * one node per namespace once there are more than fit (a folded namespace unfolds on request), and
 * by ordering each column to cross as few edges as possible. Pure: runs in the browser and in
 * unit tests.
 */
import type { DashboardView, Health, ServiceView } from "./view.js";

export type NodeKind = "exporter" | "service" | "namespace" | "importer";

export interface FlowNode {
  id: string;
  kind: NodeKind;
  column: 0 | 1 | 2;
  label: string;
  /** Second line: counts, ClusterSetIP… */
  detail: string;
  health: Health;
  /** Where activating the node leads (a hash route). */
  href: string;
}

export interface FlowEdge {
  from: string;
  to: string;
  /** Services carried (1 for a single service). */
  count: number;
  health: Health;
}

export interface FlowGraph {
  nodes: FlowNode[];
  edges: FlowEdge[];
}

export interface GraphOptions {
  /** Show at most this many service nodes; beyond it, namespaces are folded. */
  maxServiceNodes: number;
  /** Namespaces shown service by service even when folding. */
  expanded: ReadonlySet<string>;
  /** Only services whose "namespace/name" contains this text. */
  filter: string;
}

const HEALTH_ORDER: Health[] = ["healthy", "unknown", "degraded", "unhealthy"];
const worst = (hs: Health[]): Health =>
  hs.reduce<Health>((a, b) => (HEALTH_ORDER.indexOf(b) > HEALTH_ORDER.indexOf(a) ? b : a), "healthy");

function clusterNode(name: string, kind: "exporter" | "importer", health: Health): FlowNode {
  return {
    id: `${kind}:${name}`,
    kind,
    column: kind === "exporter" ? 0 : 2,
    label: name,
    detail: "",
    health,
    href: `#/clusters/${encodeURIComponent(name)}`,
  };
}

function middleNode(s: ServiceView, folded: boolean): FlowNode {
  const ns = encodeURIComponent(s.namespace);
  return folded
    ? {
        id: `namespace:${s.namespace}`,
        kind: "namespace",
        column: 1,
        label: `${s.namespace}/*`,
        detail: "",
        health: s.health,
        href: `#/services?namespace=${ns}`,
      }
    : {
        id: `service:${s.namespace}/${s.name}`,
        kind: "service",
        column: 1,
        label: `${s.namespace}/${s.name}`,
        detail: s.importers[0]?.ips[0] ?? s.importers[0]?.type ?? "not imported",
        health: s.health,
        href: `#/services/${ns}/${encodeURIComponent(s.name)}`,
      };
}

/** Second lines once every edge is known: counts for clusters and folded namespaces. */
function describeNodes(nodes: Iterable<FlowNode>, edges: FlowEdge[], members: Map<string, Health[]>): void {
  const degree = new Map<string, number>();
  for (const e of edges) {
    degree.set(e.from, (degree.get(e.from) ?? 0) + 1);
    degree.set(e.to, (degree.get(e.to) ?? 0) + 1);
  }
  for (const node of nodes) {
    if (node.kind === "namespace") {
      const healths = members.get(node.id) ?? [];
      node.health = worst(healths);
      node.detail = `${healths.length} services`;
    } else if (node.kind !== "service") {
      node.detail = `${degree.get(node.id) ?? 0} ${node.kind === "exporter" ? "exports" : "imports"}`;
    }
  }
}

export function flowGraph(view: DashboardView, options: GraphOptions): FlowGraph {
  const filter = options.filter.trim().toLowerCase();
  const services = view.services.filter((s) => `${s.namespace}/${s.name}`.toLowerCase().includes(filter));
  const fold = services.length > options.maxServiceNodes;
  const clusterHealth = new Map(view.clusters.map((c) => [c.name, c.health]));
  const nodes = new Map<string, FlowNode>();
  const edges = new Map<string, FlowEdge>();
  const middleMembers = new Map<string, Health[]>();
  const addEdge = (from: string, to: string, health: Health) => {
    const e = edges.get(`${from}→${to}`);
    if (e) {
      e.count += 1;
      e.health = worst([e.health, health]);
    } else edges.set(`${from}→${to}`, { from, to, count: 1, health });
  };
  const cluster = (name: string, kind: "exporter" | "importer") => {
    const node = clusterNode(name, kind, clusterHealth.get(name) ?? "unknown");
    if (!nodes.has(node.id)) nodes.set(node.id, node);
    return node.id;
  };
  for (const s of services) {
    const middle = middleNode(s, fold && !options.expanded.has(s.namespace));
    if (!nodes.has(middle.id)) nodes.set(middle.id, middle);
    middleMembers.set(middle.id, [...(middleMembers.get(middle.id) ?? []), s.health]);
    for (const e of s.exporters) addEdge(cluster(e.cluster, "exporter"), middle.id, s.health);
    for (const i of s.importers) addEdge(middle.id, cluster(i.cluster, "importer"), s.health);
  }
  describeNodes(nodes.values(), [...edges.values()], middleMembers);
  return { nodes: [...nodes.values()], edges: [...edges.values()] };
}

export interface PlacedNode extends FlowNode {
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface PlacedEdge extends FlowEdge {
  /** A cubic Bézier from the right side of `from` to the left side of `to`. */
  path: string;
  strokeWidth: number;
}

export interface Layout {
  width: number;
  height: number;
  nodes: PlacedNode[];
  edges: PlacedEdge[];
}

export const LAYOUT = { nodeWidth: 210, nodeHeight: 40, rowGap: 12, columnGap: 170, margin: 16 };

/** Mean position of a node's neighbours in the adjacent column; nodes without any keep theirs. */
function barycenters(
  column: FlowNode[],
  neighbours: Map<string, string[]>,
  position: Map<string, number>,
): Map<string, number> {
  const result = new Map<string, number>();
  for (const n of column) {
    const ps = (neighbours.get(n.id) ?? []).map((id) => position.get(id)).filter((p) => p !== undefined);
    result.set(n.id, ps.length > 0 ? ps.reduce((a, b) => a + b, 0) / ps.length : position.get(n.id)!);
  }
  return result;
}

/** Number of pairs of edges between two adjacent columns that cross. */
export function crossings(graph: FlowGraph, order: Map<string, number>): number {
  const es = graph.edges
    .map((e) => [order.get(e.from)!, order.get(e.to)!] as const)
    .filter(([a, b]) => a !== undefined && b !== undefined);
  let n = 0;
  for (let i = 0; i < es.length; i++)
    for (let j = i + 1; j < es.length; j++) {
      const [a1, b1] = es[i]!;
      const [a2, b2] = es[j]!;
      if ((a1 - a2) * (b1 - b2) < 0) n += 1;
    }
  return n;
}

/** Orders each column by the barycentre heuristic (a few sweeps both ways), then places it. */
export function layoutGraph(graph: FlowGraph): Layout {
  const columns: FlowNode[][] = [[], [], []];
  for (const n of [...graph.nodes].sort((a, b) => a.label.localeCompare(b.label))) columns[n.column]!.push(n);
  const left = new Map<string, string[]>();
  const right = new Map<string, string[]>();
  for (const e of graph.edges) {
    right.set(e.from, [...(right.get(e.from) ?? []), e.to]);
    left.set(e.to, [...(left.get(e.to) ?? []), e.from]);
  }
  const position = new Map<string, number>();
  const index = (col: FlowNode[]) => col.forEach((n, i) => position.set(n.id, i));
  columns.forEach(index);
  // Ties keep their current order (the sort is stable): a column whose neighbours are all alike
  // must not undo what the other side's sweep arranged.
  const sortBy = (col: FlowNode[], by: Map<string, number>) =>
    col.sort((a, b) => by.get(a.id)! - by.get(b.id)!);
  for (let sweep = 0; sweep < 4; sweep++) {
    sortBy(columns[1]!, barycenters(columns[1]!, left, position));
    index(columns[1]!);
    sortBy(columns[2]!, barycenters(columns[2]!, left, position));
    index(columns[2]!);
    sortBy(columns[1]!, barycenters(columns[1]!, right, position));
    index(columns[1]!);
    sortBy(columns[0]!, barycenters(columns[0]!, right, position));
    index(columns[0]!);
  }
  const { nodeWidth, nodeHeight, rowGap, columnGap, margin } = LAYOUT;
  const tallest = Math.max(1, ...columns.map((c) => c.length));
  const height = margin * 2 + tallest * nodeHeight + (tallest - 1) * rowGap;
  const placed = new Map<string, PlacedNode>();
  columns.forEach((col, c) => {
    // Shorter columns are centred against the tallest.
    const colHeight = col.length * nodeHeight + Math.max(0, col.length - 1) * rowGap;
    const top = (height - colHeight) / 2;
    col.forEach((n, i) =>
      placed.set(n.id, {
        ...n,
        x: margin + c * (nodeWidth + columnGap),
        y: top + i * (nodeHeight + rowGap),
        width: nodeWidth,
        height: nodeHeight,
      }),
    );
  });
  const maxCount = Math.max(1, ...graph.edges.map((e) => e.count));
  const edges = graph.edges.map((e): PlacedEdge => {
    const a = placed.get(e.from)!;
    const b = placed.get(e.to)!;
    const x1 = a.x + a.width;
    const y1 = a.y + a.height / 2;
    const x2 = b.x;
    const y2 = b.y + b.height / 2;
    const mid = (x1 + x2) / 2;
    return {
      ...e,
      path: `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2},${y2}`,
      strokeWidth: 1.5 + (5 * Math.log1p(e.count)) / Math.log1p(maxCount),
    };
  });
  return {
    width: margin * 2 + 3 * nodeWidth + 2 * columnGap,
    height,
    nodes: [...placed.values()],
    edges,
  };
}
