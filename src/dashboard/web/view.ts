/**
 * What the dashboard shows: one document for the whole clusterset, built on the server from what it
 * observes and sent whole to the browser on every change. Shared by the server (which builds it)
 * and the browser code (which renders it); types only.
 */

export interface ConditionView {
  status: "True" | "False" | "Unknown";
  reason: string;
  message: string;
  since?: string;
}

/** The dashboard's own connection to a member, through the credentials the hub holds. */
export type ConnectionView =
  | { state: "connecting" }
  | { state: "connected" }
  | { state: "unreachable"; since: string; error: string }
  | { state: "no-credentials"; error: string };

export type Health = "healthy" | "degraded" | "unhealthy" | "unknown";

export interface ClusterView {
  name: string;
  clusterId: string;
  region?: string;
  zone?: string;
  gatewayAddresses: string[];
  /** Worst of what the controller reports (the Cluster's conditions) and what the dashboard sees. */
  health: Health;
  /** One sentence on why the health is what it is. */
  healthReason: string;
  ready?: ConditionView;
  connection: ConnectionView;
  kubernetesVersion?: string;
  lastHeartbeat?: string;
  exports: number;
  imports: number;
  conflicts: number;
}

export interface ExporterView {
  cluster: string;
  valid?: ConditionView;
  ready?: ConditionView;
  conflict?: ConditionView;
  /** Clusters allowed to consume it (gateway access rule); undefined = clusterset default. */
  allowedClusters?: string[];
  flat: boolean;
}

export interface EndpointsView {
  sourceCluster: string;
  ready: number;
  total: number;
}

export interface RouteShareView {
  clusterId: string;
  tier: number;
  weight: number;
  usable: boolean;
  sharePercent: number;
}

export interface ImporterView {
  cluster: string;
  type: string;
  ips: string[];
  sourceClusters: string[];
  /** Imported endpoints in this member, by the cluster they come from. */
  endpoints: EndpointsView[];
  /** How this member's gateway splits new connections now, per port. */
  routing: Array<{ port: number; protocol?: "UDP"; targets: RouteShareView[] }>;
}

/**
 * Whether a connection from one cluster would get through, as `meridian explain` judges it
 * (GET /api/reachability, per service, for every member the dashboard reaches).
 */
export interface ReachabilityView {
  cluster: string;
  reachable: boolean;
  /** The first check that fails, with what to do about it. */
  problem?: { check: string; detail: string; hint?: string };
}

/** Every check along the path from one cluster (GET /api/explain). */
export interface ExplainView {
  namespace: string;
  service: string;
  from: string;
  reachable: boolean;
  steps: Array<{ check: string; status: "ok" | "warn" | "fail" | "skipped"; detail: string; hint?: string }>;
}

export interface PolicyView {
  cluster: string;
  name: string;
  summary: string;
}

export interface ServiceView {
  namespace: string;
  name: string;
  ports: string[];
  exporters: ExporterView[];
  importers: ImporterView[];
  policies: PolicyView[];
  /** Conflict conditions that are True, with their messages, by exporting cluster. */
  conflicts: Array<{ cluster: string; reason: string; message: string }>;
  health: Health;
  healthReason: string;
  /** Recent export-to-import propagation times, when the controller reports them. */
  propagation?: { lastSeconds: number; at: string };
}

export interface PeerView {
  clusterId: string;
  available: boolean;
  probe: string;
  consecutiveFailures: number;
}

export interface GatewayView {
  cluster: string;
  peers: PeerView[];
  services: number;
  /** The limits the gateway refused new connections at in the last few seconds, by direction. */
  atLimit?: { outbound?: "max-connections" | "open-files"; inbound?: "max-connections" | "open-files" };
  /** Counters the gateway publishes, and rates the dashboard derives from successive reports. */
  traffic?: CounterView[];
}

export interface DnsView {
  cluster: string;
  traffic?: CounterView[];
}

export interface CounterView {
  name: string;
  total: number;
  perSecond?: number;
}

export interface DashboardView {
  generatedAt: string;
  hub: { reachable: boolean; error?: string; namespace: string };
  clusters: ClusterView[];
  services: ServiceView[];
  gateways: GatewayView[];
  dns: DnsView[];
}
