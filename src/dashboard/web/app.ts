/// <reference lib="dom" />
/**
 * The dashboard in the browser: receives the whole view over Server-Sent Events and renders the
 * route in the address's hash. DOM nodes are built with textContent only (object names and
 * condition messages are never parsed as HTML). Focus and the filter text survive re-renders, so
 * live updates never pull the keyboard user away from where they are.
 */
import { flowGraph, LAYOUT, layoutGraph } from "./graph.js";
import type {
  ClusterView,
  ConditionView,
  CounterView,
  DashboardView,
  ExplainView,
  Health,
  ReachabilityView,
  ServiceView,
} from "./view.js";

type Child = Node | string | null | undefined | false;
type Attrs = Record<string, string | number | boolean | undefined>;

function h(tag: string, attrs: Attrs = {}, ...children: Child[]): HTMLElement {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

const SVG = "http://www.w3.org/2000/svg";
function s(tag: string, attrs: Attrs = {}, ...children: Child[]): SVGElement {
  const el = document.createElementNS(SVG, tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

function setAttrs(el: Element, attrs: Attrs): void {
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue;
    el.setAttribute(k, v === true ? "" : String(v));
  }
}

function append(el: Element, children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    el.append(typeof c === "string" ? document.createTextNode(c) : c);
  }
}

const healthLabel: Record<Health, string> = {
  healthy: "Healthy",
  degraded: "Degraded",
  unhealthy: "Unhealthy",
  unknown: "Unknown",
};

function badge(health: Health, title?: string): HTMLElement {
  return h("span", { class: `health ${health}`, title }, healthLabel[health]);
}

function empty(text: string, ...more: Child[]): HTMLElement {
  return h("p", { class: "empty" }, text, ...more);
}

function code(text: string): HTMLElement {
  return h("code", {}, text);
}

function table(caption: string, headers: string[], rows: Child[][], emptyText: string): HTMLElement {
  if (rows.length === 0) return empty(emptyText);
  return h(
    "table",
    {},
    h("caption", {}, caption),
    h("thead", {}, h("tr", {}, ...headers.map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, ...rows.map((r) => h("tr", {}, ...r.map((c) => h("td", {}, c))))),
  );
}

function ago(iso: string | undefined): string {
  if (!iso) return "never";
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (s < 90) return `${s}s ago`;
  if (s < 5400) return `${Math.round(s / 60)}m ago`;
  return `${Math.round(s / 3600)}h ago`;
}

/** A condition; `good` is the status that is good news (False for Conflict). */
function conditionCell(c: ConditionView | undefined, good: "True" | "False" = "True"): Child {
  if (!c) return h("span", { class: "muted" }, "not reported");
  const cls = c.status === "Unknown" ? "unknown" : c.status === good ? "healthy" : "unhealthy";
  return h(
    "div",
    {},
    h("span", { class: `health ${cls}` }, `${c.status} · ${c.reason}`),
    c.message ? h("div", { class: "message muted" }, c.message) : null,
  );
}

const serviceHref = (sv: { namespace: string; name: string }) =>
  `#/services/${encodeURIComponent(sv.namespace)}/${encodeURIComponent(sv.name)}`;
const clusterHref = (name: string) => `#/clusters/${encodeURIComponent(name)}`;
/** Links keep keyboard focus across live re-renders (found again by their target). */
const link = (href: string, text: string) => h("a", { href, "data-focus": `link:${href}` }, text);

function shareBar(percent: number): HTMLElement {
  const bar = h("span", { class: "bar" });
  // Through the CSSOM: the page's Content-Security-Policy refuses style attributes.
  bar.style.width = `${Math.max(2, percent / 2)}px`;
  return bar;
}

// --------------------------------------------------------------------------------------------
// State: the latest view, the route, and what the user typed
// --------------------------------------------------------------------------------------------

let view: DashboardView | undefined;
let connected = false;
const filters = { graph: "", services: "" };
/** "ns/name from cluster" panels the user opened: they stay open across live updates. */
const openExplanations = new Set<string>();
const expanded = new Set<string>();

interface Route {
  name: "overview" | "clusters" | "cluster" | "services" | "service" | "traffic" | "unknown";
  params: string[];
  query: URLSearchParams;
}

function route(): Route {
  const raw = location.hash.replace(/^#/, "") || "/";
  const [pathPart, queryPart] = raw.split("?", 2) as [string, string | undefined];
  const parts = pathPart
    .split("/")
    .filter((p) => p !== "")
    .map(decodeURIComponent);
  const query = new URLSearchParams(queryPart ?? "");
  if (parts.length === 0) return { name: "overview", params: [], query };
  if (parts[0] === "clusters")
    return { name: parts[1] ? "cluster" : "clusters", params: parts.slice(1), query };
  if (parts[0] === "services")
    return { name: parts.length >= 3 ? "service" : "services", params: parts.slice(1), query };
  if (parts[0] === "traffic") return { name: "traffic", params: [], query };
  return { name: "unknown", params: parts, query };
}

// --------------------------------------------------------------------------------------------
// Views
// --------------------------------------------------------------------------------------------

function overview(v: DashboardView): Child[] {
  const unhealthy = v.clusters.filter((c) => c.health === "unhealthy");
  const conflicts = v.services.reduce((n, sv) => n + sv.conflicts.length, 0);
  return [
    h("h1", {}, "Clusterset overview"),
    h(
      "div",
      { class: "cards" },
      card(
        `${v.clusters.filter((c) => c.health === "healthy").length}/${v.clusters.length}`,
        "clusters healthy",
      ),
      card(String(v.services.length), "multi-cluster services"),
      card(String(conflicts), "conflicts"),
      card(String(unhealthy.length), "clusters unreachable or failing"),
    ),
    h("h2", {}, "Clusters"),
    clustersTable(v.clusters),
    h("h2", { id: "graph-title" }, "Exports and imports"),
    graphSection(v),
  ];
}

function card(n: string, label: string): HTMLElement {
  return h("div", { class: "card" }, h("div", { class: "n" }, n), h("div", { class: "l" }, label));
}

function clustersTable(clusters: ClusterView[]): HTMLElement {
  if (clusters.length === 0)
    return empty("No member has joined yet. Add one with ", code("meridian join <name>"), ".");
  return table(
    "Every member registered in the hub",
    ["Cluster", "Health", "Why", "Locality", "Exports", "Imports", "Conflicts", "Heartbeat"],
    clusters.map((c) => [
      link(clusterHref(c.name), c.name),
      badge(c.health),
      h("span", { class: "message" }, c.healthReason),
      [c.region, c.zone].filter(Boolean).join(" / ") || "—",
      String(c.exports),
      String(c.imports),
      String(c.conflicts),
      ago(c.lastHeartbeat),
    ]),
    "",
  );
}

/** A search box whose text survives re-renders (kept in `filters`). */
function filterInput(which: keyof typeof filters, placeholder: string, label: string): HTMLInputElement {
  const input = h("input", {
    type: "search",
    "data-focus": `${which}-filter`,
    placeholder,
    "aria-label": label,
    value: filters[which],
  }) as HTMLInputElement;
  input.addEventListener("input", () => {
    filters[which] = input.value;
    render();
  });
  return input;
}

function graphSection(v: DashboardView): HTMLElement {
  const input = filterInput("graph", "Filter services (namespace/name)", "Filter the graph's services");
  const toolbar = h(
    "div",
    { class: "toolbar" },
    input,
    expanded.size > 0 ? collapseButton() : null,
    h("span", { class: "muted" }, "Left: exporting clusters. Middle: services. Right: importing clusters."),
  );
  if (v.services.length === 0)
    return h(
      "div",
      {},
      empty(
        "Nothing is exported yet. Export a Service with ",
        code("meridian export <service> -n <ns> --cluster <c>"),
        ".",
      ),
    );
  const graph = flowGraph(v, { maxServiceNodes: 40, expanded, filter: filters.graph });
  if (graph.nodes.length === 0) return h("div", {}, toolbar, empty(`No service matches “${filters.graph}”.`));
  const layout = layoutGraph(graph);
  const top = 24;
  const svg = s("svg", {
    width: layout.width,
    height: layout.height + top,
    viewBox: `0 ${-top} ${layout.width} ${layout.height + top}`,
    role: "img",
    "aria-labelledby": "graph-title",
  });
  ["Exported by", "Service", "Imported in"].forEach((title, i) =>
    svg.append(
      s(
        "text",
        { class: "col-title", x: LAYOUT.margin + i * (LAYOUT.nodeWidth + LAYOUT.columnGap), y: -6 },
        title,
      ),
    ),
  );
  for (const e of layout.edges) {
    svg.append(
      s(
        "path",
        { class: `edge ${e.health}`, d: e.path, "stroke-width": e.strokeWidth.toFixed(1) },
        s(
          "title",
          {},
          `${e.from.split(":")[1]} → ${e.to.split(":")[1]}: ${e.count} service${e.count === 1 ? "" : "s"}`,
        ),
      ),
    );
  }
  for (const n of layout.nodes) {
    const label = `${n.label}, ${healthLabel[n.health]}${n.detail ? `, ${n.detail}` : ""}`;
    const a = s(
      "a",
      { href: n.href, "aria-label": label, "data-node": n.id, "data-focus": `node:${n.id}` },
      s("rect", { class: n.health, x: n.x, y: n.y, width: n.width, height: n.height }),
      s("text", { x: n.x + 10, y: n.y + 16 }, truncate(n.label, 30)),
      s(
        "text",
        { class: "detail", x: n.x + 10, y: n.y + 31 },
        `${healthLabel[n.health]}${n.detail ? ` · ${n.detail}` : ""}`,
      ),
    );
    if (n.kind === "namespace") {
      a.addEventListener("click", (ev) => {
        ev.preventDefault();
        expanded.add(n.label.replace(/\/\*$/, ""));
        render();
      });
    }
    svg.append(a);
  }
  return h("div", {}, toolbar, h("div", { class: "graph", "data-testid": "graph" }, svg));
}

function collapseButton(): HTMLElement {
  const b = h("button", { type: "button" }, "Fold namespaces again");
  b.addEventListener("click", () => {
    expanded.clear();
    render();
  });
  return b;
}

function truncate(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

function clusterPage(v: DashboardView, name: string): Child[] {
  const c = v.clusters.find((x) => x.name === name);
  if (!c) return [h("h1", {}, name), empty("No such cluster in the hub. It may have left the clusterset.")];
  const exported = v.services.filter((sv) => sv.exporters.some((e) => e.cluster === name));
  const imported = v.services.filter((sv) => sv.importers.some((i) => i.cluster === name));
  const gateway = v.gateways.find((g) => g.cluster === name);
  const dns = v.dns.find((d) => d.cluster === name);
  const connection =
    c.connection.state === "unreachable"
      ? `unreachable since ${c.connection.since}: ${c.connection.error}`
      : c.connection.state === "no-credentials"
        ? c.connection.error
        : c.connection.state;
  return [
    h("h1", {}, `Cluster ${c.name} `, badge(c.health)),
    h(
      "dl",
      { class: "facts" },
      h("dt", {}, "Why"),
      h("dd", { class: "message" }, c.healthReason),
      h("dt", {}, "Cluster ID"),
      h("dd", {}, c.clusterId),
      h("dt", {}, "Locality"),
      h("dd", {}, [c.region, c.zone].filter(Boolean).join(" / ") || "not set"),
      h("dt", {}, "Gateway addresses"),
      h("dd", {}, c.gatewayAddresses.join(", ") || "none"),
      h("dt", {}, "Kubernetes"),
      h("dd", {}, c.kubernetesVersion ?? "unknown"),
      h("dt", {}, "Controller heartbeat"),
      h("dd", {}, ago(c.lastHeartbeat)),
      h("dt", {}, "Dashboard connection"),
      h("dd", { class: "message" }, connection),
    ),
    h("h2", {}, `Exports (${exported.length})`),
    servicesTable(exported, `${name} exports nothing.`),
    h("h2", {}, `Imports (${imported.length})`),
    servicesTable(imported, `${name} imports nothing.`),
    h("h2", {}, "Gateway"),
    gateway ? gatewaysTable([gateway]) : empty("No gateway report from this cluster."),
    h("h2", {}, "DNS"),
    dns ? dnsTable([dns]) : empty("No DNS report from this cluster."),
  ];
}

function servicesTable(services: ServiceView[], emptyText: string): HTMLElement {
  return table(
    "Multi-cluster services",
    ["Service", "Health", "Why", "Exported by", "Imported in", "ClusterSetIP", "Ports"],
    services.map((sv) => [
      link(serviceHref(sv), `${sv.namespace}/${sv.name}`),
      badge(sv.health),
      h("span", { class: "message" }, sv.healthReason),
      sv.exporters.map((e) => e.cluster).join(", ") || "—",
      sv.importers.map((i) => i.cluster).join(", ") || "—",
      sv.importers.find((i) => i.ips.length > 0)?.ips.join(", ") ?? "—",
      sv.ports.join(", ") || "—",
    ]),
    emptyText,
  );
}

function servicesPage(v: DashboardView, namespace: string | null): Child[] {
  const input = filterInput("services", "Filter (namespace/name)", "Filter services");
  const f = filters.services.trim().toLowerCase();
  const shown = v.services.filter(
    (sv) =>
      (namespace === null || sv.namespace === namespace) &&
      `${sv.namespace}/${sv.name}`.toLowerCase().includes(f),
  );
  return [
    h("h1", {}, namespace ? `Services in ${namespace}` : "Services"),
    h(
      "div",
      { class: "toolbar" },
      input,
      h("span", { class: "muted" }, `${shown.length} of ${v.services.length}`),
    ),
    servicesTable(
      shown,
      v.services.length === 0 ? "Nothing is exported yet." : "No service matches the filter.",
    ),
  ];
}

const stepMark: Record<ExplainView["steps"][number]["status"], string> = {
  ok: "✔",
  warn: "!",
  fail: "✖",
  skipped: "–",
};

/** Every check from one cluster, fetched when the panel opens (and again on each update while open). */
function explanationPanel(sv: ServiceView, from: string): HTMLElement {
  const key = `${sv.namespace}/${sv.name} from ${from}`;
  const body = h("div", { class: "muted" }, "Checking…");
  const details = h(
    "details",
    { open: openExplanations.has(key), "data-testid": `explain-${from}` },
    h("summary", { "data-focus": `explain:${key}` }, "All checks"),
    body,
  ) as HTMLDetailsElement;
  const load = async (): Promise<void> => {
    const q = new URLSearchParams({ namespace: sv.namespace, name: sv.name, from });
    const res = await fetch(`/api/explain?${q.toString()}`);
    const e = (await res.json()) as ExplainView;
    body.replaceChildren(
      table(
        `The path from ${from}, as 'meridian explain' walks it`,
        ["", "Check", "Finding", "What to do"],
        e.steps.map((st) => [
          h(
            "span",
            { class: st.status === "fail" ? "unhealthy" : st.status === "ok" ? "healthy" : "unknown" },
            stepMark[st.status],
          ),
          st.check,
          h("span", { class: "message" }, st.detail),
          st.hint ?? "",
        ]),
        "",
      ),
      h(
        "p",
        { class: "muted" },
        "The DNS answer and a live connection are checked from inside the cluster by ",
        code(`meridian explain ${sv.name} -n ${sv.namespace} --from ${from}`),
        ".",
      ),
    );
  };
  details.addEventListener("toggle", () => {
    if (details.open) {
      openExplanations.add(key);
      void load();
    } else openExplanations.delete(key);
  });
  if (details.open) void load();
  return details;
}

/** Last verdicts fetched per service: shown at once on a re-render, then refreshed. */
const reachabilityCache = new Map<string, ReachabilityView[]>();

function reachabilityRows(sv: ServiceView, verdicts: ReachabilityView[]): HTMLElement {
  return table(
    "Would a connection from each cluster get through? (the checks of meridian explain that the hub can see)",
    ["From", "Verdict", "Where it breaks", "What to do", ""],
    verdicts.map((r) => [
      link(clusterHref(r.cluster), r.cluster),
      h(
        "span",
        { class: `health ${r.reachable ? "healthy" : "unhealthy"}` },
        r.reachable ? "Reachable" : "Not reachable",
      ),
      r.problem ? h("span", { class: "message" }, `${r.problem.check}: ${r.problem.detail}`) : "—",
      r.problem?.hint ?? "",
      explanationPanel(sv, r.cluster),
    ]),
    "The dashboard reaches no member to judge from.",
  );
}

/** Fetched for this service only, each time the page renders (every live update). */
function reachabilitySection(sv: ServiceView): HTMLElement {
  const key = `${sv.namespace}/${sv.name}`;
  const cached = reachabilityCache.get(key);
  const section = h(
    "div",
    { "data-testid": "reachability" },
    cached ? reachabilityRows(sv, cached) : h("p", { class: "muted" }, "Checking from every cluster…"),
  );
  const q = new URLSearchParams({ namespace: sv.namespace, name: sv.name });
  void fetch(`/api/reachability?${q.toString()}`)
    .then(async (res) => (await res.json()) as ReachabilityView[])
    .then((verdicts) => {
      const unchanged = JSON.stringify(verdicts) === JSON.stringify(cached);
      reachabilityCache.set(key, verdicts);
      // Replacing unchanged rows would close open panels and move the keyboard focus.
      if (!unchanged || !cached) section.replaceChildren(reachabilityRows(sv, verdicts));
    })
    .catch(() => {
      if (!cached)
        section.replaceChildren(empty("Could not ask the dashboard server; it may be restarting."));
    });
  return section;
}

function servicePage(v: DashboardView, namespace: string, name: string): Child[] {
  const sv = v.services.find((x) => x.namespace === namespace && x.name === name);
  if (!sv)
    return [
      h("h1", {}, `${namespace}/${name}`),
      empty(
        "No cluster exports or imports this service. Export it with ",
        code(`meridian export ${name} -n ${namespace} --cluster <c>`),
        ".",
      ),
    ];
  return [
    h("h1", {}, `${sv.namespace}/${sv.name} `, badge(sv.health)),
    h(
      "dl",
      { class: "facts" },
      h("dt", {}, "Why"),
      h("dd", { class: "message" }, sv.healthReason),
      h("dt", {}, "Ports"),
      h("dd", {}, sv.ports.join(", ") || "—"),
      h("dt", {}, "Propagation"),
      h(
        "dd",
        {},
        sv.propagation
          ? `last change reached every member in ${(sv.propagation.lastSeconds * 1000).toFixed(0)} ms (${ago(sv.propagation.at)})`
          : "no recent change measured",
      ),
    ),
    sv.conflicts.length > 0 ? h("h2", {}, "Conflicts") : null,
    sv.conflicts.length > 0
      ? table(
          "Exports whose Conflict condition is True",
          ["Cluster", "Reason", "Message"],
          sv.conflicts.map((c) => [
            c.cluster,
            c.reason,
            h("span", { class: "message", "data-testid": "conflict" }, c.message),
          ]),
          "",
        )
      : null,
    h("h2", {}, "Exports"),
    table(
      "Each exporting cluster's ServiceExport conditions and access rule",
      ["Cluster", "Valid", "Ready", "Conflict", "Access", "Mode"],
      sv.exporters.map((e) => [
        link(clusterHref(e.cluster), e.cluster),
        conditionCell(e.valid),
        conditionCell(e.ready),
        conditionCell(e.conflict, "False"),
        e.allowedClusters ? `only ${e.allowedClusters.join(", ") || "nobody"}` : "clusterset default",
        e.flat ? "flat (no gateway)" : "gateway",
      ]),
      "No cluster exports it any more.",
    ),
    h("h2", {}, "Reachable from"),
    reachabilitySection(sv),
    h("h2", {}, "Imports and endpoints"),
    table(
      "What each importing cluster has, by source cluster",
      ["Cluster", "Type", "ClusterSetIP", "Endpoints by source (ready/total)", "Routing of new connections"],
      sv.importers.map((i) => [
        link(clusterHref(i.cluster), i.cluster),
        i.type,
        i.ips.join(", ") || "—",
        i.endpoints.length > 0
          ? h("div", {}, ...i.endpoints.map((e) => h("div", {}, `${e.sourceCluster}: ${e.ready}/${e.total}`)))
          : h("span", { class: "muted" }, "none"),
        i.routing.length > 0
          ? h(
              "div",
              {},
              ...i.routing.map((r) =>
                h(
                  "div",
                  {},
                  `port ${r.port}${r.protocol ? `/${r.protocol}` : ""}: `,
                  r.targets.length === 0 ? h("span", { class: "unhealthy" }, "no cluster to send to") : null,
                  ...r.targets.map((t) =>
                    h(
                      "span",
                      {
                        class: "pill",
                        title: `tier ${t.tier}, weight ${t.weight}${t.usable ? "" : ", not usable"}`,
                      },
                      shareBar(t.sharePercent),
                      `${t.clusterId} ${t.sharePercent}%`,
                    ),
                  ),
                ),
              ),
            )
          : h("span", { class: "muted" }, "no gateway report"),
      ]),
      "No cluster imports it yet (its namespace must exist in the importing cluster).",
    ),
    h("h2", {}, "Traffic policies"),
    table(
      "TrafficPolicies naming this service",
      ["Cluster", "Policy", "What it asks for"],
      sv.policies.map((p) => [p.cluster, p.name, p.summary]),
      "No TrafficPolicy: locality first (same cluster, zone, region), then every exporter by endpoints.",
    ),
  ];
}

type GatewayView = DashboardView["gateways"][number];

function counter(traffic: CounterView[] | undefined, name: string): string {
  const c = traffic?.find((x) => x.name === name);
  if (!c) return "—";
  return c.perSecond !== undefined
    ? `${c.total.toLocaleString()} (${c.perSecond.toFixed(1)}/s)`
    : c.total.toLocaleString();
}

function peersCell(g: GatewayView): Child {
  if (g.peers.length === 0) return h("span", { class: "muted" }, "no peers known");
  return h(
    "div",
    {},
    ...g.peers.map((p) =>
      h(
        "div",
        {},
        badge(
          p.available ? "healthy" : "unhealthy",
          `probe: ${p.probe}, ${p.consecutiveFailures} failures in a row`,
        ),
        ` ${p.clusterId}`,
        p.available
          ? null
          : h("span", { class: "muted" }, ` (${p.probe}, ${p.consecutiveFailures} failures)`),
      ),
    ),
  );
}

function refusalsCell(g: GatewayView): Child {
  const byReason = (g.traffic ?? []).filter((c) => c.name.startsWith("refusals{") && c.total > 0);
  const atLimit = Object.entries(g.atLimit ?? {}).map(([direction, cause]) =>
    h(
      "div",
      {},
      badge("unhealthy", "refused new connections in the last 10 s"),
      ` ${direction} at ${cause} now`,
    ),
  );
  if (byReason.length === 0 && atLimit.length === 0) return counter(g.traffic, "refusals");
  return h(
    "div",
    {},
    ...atLimit,
    ...byReason.map((c) => h("div", {}, `${c.name.slice(9, -1)}: ${c.total.toLocaleString()}`)),
  );
}

function gatewaysTable(gateways: GatewayView[]): HTMLElement {
  return table(
    "Each member's east-west gateway: its view of peer gateways, and traffic totals (rates since its previous report)",
    ["Gateway", "Peer gateways", "Services routed", "Connections", "Open now", "Bytes", "Refusals"],
    gateways.map((g) => [
      link(clusterHref(g.cluster), g.cluster),
      peersCell(g),
      String(g.services),
      counter(g.traffic, "connections"),
      g.traffic?.find((c) => c.name === "active")?.total.toLocaleString() ?? "—",
      counter(g.traffic, "bytes"),
      refusalsCell(g),
    ]),
    "No gateway has reported yet.",
  );
}

function dnsTable(dns: DashboardView["dns"]): HTMLElement {
  return table(
    "Each member's clusterset.local DNS server (rates since its previous report)",
    ["Cluster", "Queries", "NXDOMAIN", "SERVFAIL"],
    dns.map((d) => [
      link(clusterHref(d.cluster), d.cluster),
      counter(d.traffic, "queries"),
      counter(d.traffic, "queries{NXDOMAIN}"),
      counter(d.traffic, "queries{SERVFAIL}"),
    ]),
    "No DNS server has reported yet.",
  );
}

function trafficPage(v: DashboardView): Child[] {
  return [
    h("h1", {}, "Gateways and DNS"),
    h("h2", {}, "Gateways"),
    gatewaysTable(v.gateways),
    h("h2", {}, "DNS"),
    dnsTable(v.dns),
  ];
}

// --------------------------------------------------------------------------------------------
// Rendering and the live connection
// --------------------------------------------------------------------------------------------

function markCurrentNav(r: Route): void {
  const section: Partial<Record<Route["name"], string>> = { cluster: "clusters", service: "services" };
  for (const a of document.querySelectorAll<HTMLAnchorElement>("header nav a")) {
    if (a.dataset["nav"] === (section[r.name] ?? r.name)) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
}

function showProblems(): void {
  const banner = document.getElementById("banner")!;
  const problems: string[] = [];
  if (!connected && view)
    problems.push("Lost the connection to the dashboard server; reconnecting. Showing the last known state.");
  if (view && !view.hub.reachable)
    problems.push(`The hub's API server cannot be reached: ${view.hub.error ?? "unknown error"}`);
  banner.hidden = problems.length === 0;
  banner.textContent = problems.join(" ");
}

function pageContent(v: DashboardView, r: Route): Child[] {
  switch (r.name) {
    case "overview":
      for (const ns of r.query.getAll("expand")) expanded.add(ns);
      return overview(v);
    case "clusters":
      return [h("h1", {}, "Clusters"), clustersTable(v.clusters)];
    case "cluster":
      return clusterPage(v, r.params[0]!);
    case "services":
      return servicesPage(v, r.query.get("namespace"));
    case "service":
      return servicePage(v, r.params[0]!, r.params[1]!);
    case "traffic":
      return trafficPage(v);
    case "unknown":
      return [h("h1", {}, "Not found"), empty("No such page. ", link("#/", "Go to the overview"), ".")];
  }
}

/** Re-renders the page, putting keyboard focus (and the caret in a filter) back where it was. */
function render(): void {
  const r = route();
  markCurrentNav(r);
  showProblems();
  if (!view) return;
  const main = document.getElementById("main")!;
  const active = document.activeElement;
  const focusKey =
    active instanceof HTMLElement || active instanceof SVGElement ? active.dataset["focus"] : undefined;
  const caret = active instanceof HTMLInputElement ? active.selectionStart : null;
  main.replaceChildren(...pageContent(view, r).filter((c): c is Node | string => Boolean(c)));
  if (!focusKey) return;
  const again = main.querySelector<HTMLElement>(`[data-focus="${CSS.escape(focusKey)}"]`);
  again?.focus();
  if (again instanceof HTMLInputElement && caret !== null) again.setSelectionRange(caret, caret);
}

function setLive(text: string): void {
  document.getElementById("live")!.textContent = text;
}

function connect(): void {
  const events = new EventSource("/api/events");
  events.addEventListener("view", (e) => {
    view = JSON.parse((e as MessageEvent<string>).data) as DashboardView;
    connected = true;
    setLive(`Live · updated ${new Date(view.generatedAt).toLocaleTimeString()}`);
    render();
  });
  events.addEventListener("error", () => {
    connected = false;
    setLive("Reconnecting…");
    render();
  });
}

window.addEventListener("hashchange", () => {
  render();
  document.getElementById("main")?.focus();
});
document.addEventListener("keydown", (e) => {
  // "/" jumps to the filter of the page, as in many consoles.
  if (e.key === "/" && !(e.target instanceof HTMLInputElement)) {
    const input = document.querySelector<HTMLInputElement>('input[type="search"]');
    if (input) {
      e.preventDefault();
      input.focus();
    }
  }
});
connect();
