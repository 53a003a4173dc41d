/**
 * What a gateway reports about itself in its member: each imported service's current routing
 * (which clusters get what share of new connections, and why), each peer gateway's health, and
 * any limit it has just refused connections at, in
 * the `meridian-gateway-status` ConfigMap of `meridian-system`. `meridian status` and the
 * dashboard read it from the member's API server, like every other object.
 */
import type { V1ConfigMap } from "@kubernetes/client-node";
import { MEMBER_NAMESPACE } from "../api/meridian.js";
import { ConfigMapPublisher } from "../kube/configmap-publisher.js";
import type { RestClient } from "../kube/rest.js";
import type { AtLimit, ServiceRouting } from "./gateway.js";
import type { HealthSnapshot } from "./health.js";

export const STATUS_CONFIGMAP = "meridian-gateway-status";
export const STATUS_KEY = "status.json";

export interface GatewayStatusReport {
  clusterId: string;
  /** Limits the gateway refused connections at in the last few seconds; absent when none. */
  atLimit?: AtLimit;
  peers: Array<{ clusterId: string; available: boolean; probe: string; consecutiveFailures: number }>;
  services: Array<{
    service: string;
    port: number;
    /** Only for UDP: TCP is the default. */
    protocol?: "UDP";
    clusters: Array<{
      clusterId: string;
      tier: number;
      weight: number;
      usable: boolean;
      /** Percentage of new connections, rounded (0–100). */
      sharePercent: number;
      readyEndpoints: number;
    }>;
  }>;
}

/**
 * The report, without what changes on every probe (round-trip times, ejection countdowns), so it
 * is rewritten only when routing or health actually change.
 */
export function gatewayStatusReport(
  clusterId: string,
  routing: ServiceRouting[],
  peers: Array<{ clusterId: string } & HealthSnapshot>,
  atLimit: AtLimit = {},
): GatewayStatusReport {
  return {
    clusterId,
    ...(atLimit.outbound || atLimit.inbound ? { atLimit } : {}),
    peers: peers
      .map((p) => ({
        clusterId: p.clusterId,
        available: p.available,
        probe: p.probe,
        consecutiveFailures: p.consecutiveFailures,
      }))
      .sort((a, b) => a.clusterId.localeCompare(b.clusterId)),
    services: routing
      .map((r) => ({
        service: r.service,
        port: r.port,
        ...(r.protocol ? { protocol: r.protocol } : {}),
        clusters: r.clusters.map((c) => ({
          clusterId: c.clusterId,
          tier: c.tier,
          weight: c.weight,
          usable: c.usable,
          sharePercent: Math.round(c.share * 100),
          readyEndpoints: c.readyEndpoints,
        })),
      }))
      .sort((a, b) => `${a.service}:${portLabel(a)}`.localeCompare(`${b.service}:${portLabel(b)}`)),
  };
}

/** A routed port as people read it: `80` for TCP, `53/UDP`. */
export const portLabel = (r: { port: number; protocol?: string }): string =>
  r.protocol && r.protocol !== "TCP" ? `${r.port}/${r.protocol}` : String(r.port);

export function parseGatewayStatus(configMap: V1ConfigMap | undefined): GatewayStatusReport | undefined {
  const raw = configMap?.data?.[STATUS_KEY];
  if (raw === undefined) return undefined;
  try {
    return JSON.parse(raw) as GatewayStatusReport;
  } catch {
    return undefined;
  }
}

export interface StatusSubject {
  routing(): ServiceRouting[];
  peerHealth(): Array<{ clusterId: string } & HealthSnapshot>;
  atLimit(): AtLimit;
}

/** Writes the report when it changes, at most once per `intervalMs`. */
export function gatewayStatusPublisher(
  rest: RestClient,
  clusterId: string,
  subject: StatusSubject,
  onError: (err: unknown) => void,
  intervalMs = 2000,
): ConfigMapPublisher<GatewayStatusReport> {
  return new ConfigMapPublisher({
    rest,
    fieldManager: "meridian-gateway",
    namespace: MEMBER_NAMESPACE,
    name: STATUS_CONFIGMAP,
    key: STATUS_KEY,
    read: () => gatewayStatusReport(clusterId, subject.routing(), subject.peerHealth(), subject.atLimit()),
    onError,
    intervalMs,
  });
}
