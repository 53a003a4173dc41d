/** Prometheus metrics of one gateway instance, in a registry of its own (several run per process in tests). */
import { Counter, Gauge, Histogram, Registry } from "prom-client";

export class GatewayMetrics {
  readonly registry = new Registry();
  readonly connectionsActive = new Gauge({
    name: "meridian_gateway_connections_active",
    help: "Open proxied connections by direction (outbound: local client to a cluster; inbound: peer gateway to a local endpoint)",
    labelNames: ["direction", "service", "cluster"] as const,
    registers: [this.registry],
  });
  readonly connectionsTotal = new Counter({
    name: "meridian_gateway_connections_total",
    help: "Proxied connections by direction, service, peer cluster and outcome",
    labelNames: ["direction", "service", "cluster", "outcome"] as const,
    registers: [this.registry],
  });
  readonly bytes = new Counter({
    name: "meridian_gateway_bytes_total",
    help: "Payload bytes by direction (sent: towards the service; received: back to the client), counted when a connection ends",
    labelNames: ["direction", "service", "cluster", "flow"] as const,
    registers: [this.registry],
  });
  readonly handshakes = new Counter({
    name: "meridian_gateway_tls_handshakes_total",
    help: "mTLS handshakes with peer gateways by role, result and whether the session was resumed",
    labelNames: ["role", "result", "resumed"] as const,
    registers: [this.registry],
  });
  readonly refusals = new Counter({
    name: "meridian_gateway_refusals_total",
    help: "Connections refused by reason (untrusted-root, no-certificate, expired, revoked, access-denied, limit, ...) and source cluster when known",
    labelNames: ["reason", "cluster", "service"] as const,
    registers: [this.registry],
  });
  readonly peerUp = new Gauge({
    name: "meridian_gateway_peer_up",
    help: "1 when the peer gateway is in rotation (probes pass, not ejected), else 0",
    labelNames: ["cluster"] as const,
    registers: [this.registry],
  });
  readonly probeRtt = new Histogram({
    name: "meridian_gateway_peer_probe_rtt_seconds",
    help: "Round trip of an application-level probe to a peer gateway over mTLS",
    labelNames: ["cluster"] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
    registers: [this.registry],
  });
  readonly probes = new Counter({
    name: "meridian_gateway_peer_probes_total",
    help: "Probes of peer gateways by result",
    labelNames: ["cluster", "result"] as const,
    registers: [this.registry],
  });
  readonly routingDecisions = new Counter({
    name: "meridian_gateway_routing_decisions_total",
    help: "Target cluster chosen for new connections, by service, cluster and tier origin",
    labelNames: ["service", "cluster", "origin"] as const,
    registers: [this.registry],
  });
  readonly routingShare = new Gauge({
    name: "meridian_gateway_routing_share",
    help: "Current share (0-1) of a service's new connections that each cluster gets",
    labelNames: ["service", "cluster"] as const,
    registers: [this.registry],
  });
  readonly poolIdle = new Gauge({
    name: "meridian_gateway_pool_idle_connections",
    help: "Warm, authenticated idle connections per peer gateway",
    labelNames: ["cluster"] as const,
    registers: [this.registry],
  });
  readonly poolReuse = new Counter({
    name: "meridian_gateway_pool_acquisitions_total",
    help: "Connections taken for a stream: warm (idle, already authenticated) or new (handshake on demand)",
    labelNames: ["cluster", "kind"] as const,
    registers: [this.registry],
  });

  /** The value of a counter/gauge child, for tests and `status`. */
  async value(name: string, labels: Record<string, string>): Promise<number> {
    const metric = (await this.registry.getMetricsAsJSON()).find((m) => m.name === name);
    const values = (metric?.values ?? []) as Array<{
      labels: Record<string, string | number>;
      value: number;
    }>;
    return values
      .filter((v) => Object.entries(labels).every(([k, want]) => String(v.labels[k]) === want))
      .reduce((s, v) => s + v.value, 0);
  }
}
