/**
 * Prometheus metrics of one gateway instance, in a registry of its own (several run per process in
 * tests). Those touched for every proxied connection are tallied (src/observability/tally.ts).
 */
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { TalliedCounter, TalliedGauge, type TallySum } from "../observability/tally.js";

/** What one proxied connection adds to, for its direction, service (`ns/name:port`) and peer cluster. */
export interface StreamSums {
  active: TallySum;
  closed: TallySum;
  aborted: TallySum;
  /** Bytes towards the service. */
  sent: TallySum;
  /** Bytes back to the client. */
  received: TallySum;
}

/** Values by three keys, made on first use: plain map lookups, no key string built per call. */
class ThreeKeyCache<T> {
  private readonly byFirst = new Map<string, Map<string, Map<string, T>>>();

  get(a: string, b: string, c: string, make: () => T): T {
    let byB = this.byFirst.get(a);
    if (!byB) this.byFirst.set(a, (byB = new Map<string, Map<string, T>>()));
    let byC = byB.get(b);
    if (!byC) byB.set(b, (byC = new Map<string, T>()));
    let value = byC.get(c);
    if (value === undefined) byC.set(c, (value = make()));
    return value;
  }
}

export class GatewayMetrics {
  readonly registry = new Registry();

  private counter<L extends string>(name: string, help: string, labelNames: readonly L[]): Counter<L> {
    return new Counter({ name, help, labelNames, registers: [this.registry] });
  }

  private gauge<L extends string>(name: string, help: string, labelNames: readonly L[]): Gauge<L> {
    return new Gauge({ name, help, labelNames, registers: [this.registry] });
  }

  private talliedCounter<L extends string>(name: string, help: string, labelNames: readonly L[]) {
    return new TalliedCounter({ name, help, labelNames, registry: this.registry });
  }

  private talliedGauge<L extends string>(name: string, help: string, labelNames: readonly L[]) {
    return new TalliedGauge({ name, help, labelNames, registry: this.registry });
  }

  private histogram<L extends string>(
    name: string,
    help: string,
    labelNames: readonly L[],
    buckets: number[],
  ): Histogram<L> {
    return new Histogram({ name, help, labelNames, buckets, registers: [this.registry] });
  }

  readonly connectionsActive = this.talliedGauge(
    "meridian_gateway_connections_active",
    "Open proxied connections by direction (outbound: local client to a cluster; inbound: peer gateway to a local endpoint)",
    ["direction", "service", "cluster"] as const,
  );
  readonly connectionsTotal = this.talliedCounter(
    "meridian_gateway_connections_total",
    "Proxied connections by direction, service, peer cluster and outcome",
    ["direction", "service", "cluster", "outcome"] as const,
  );
  readonly bytes = this.talliedCounter(
    "meridian_gateway_bytes_total",
    "Payload bytes by direction (sent: towards the service; received: back to the client), counted when a connection ends",
    ["direction", "service", "cluster", "flow"] as const,
  );
  readonly datagramsDropped = this.counter(
    "meridian_gateway_udp_datagrams_dropped_total",
    "UDP datagrams dropped because their flow's stream could not take them as fast as they came, by service (ns/name:port/UDP)",
    ["service"] as const,
  );
  readonly handshakes = this.counter(
    "meridian_gateway_tls_handshakes_total",
    "mTLS handshakes with peer gateways by role, result and whether the session was resumed",
    ["role", "result", "resumed"] as const,
  );
  readonly refusals = this.counter(
    "meridian_gateway_refusals_total",
    "Connections refused by reason (untrusted-root, no-certificate, expired, revoked, access-denied, limit, ...) and source cluster when known",
    ["reason", "cluster", "service"] as const,
  );
  readonly peerUp = this.gauge(
    "meridian_gateway_peer_up",
    "1 when the peer gateway is in rotation (probes pass, not ejected), else 0",
    ["cluster"] as const,
  );
  readonly probeRtt = this.histogram(
    "meridian_gateway_peer_probe_rtt_seconds",
    "Round trip of an application-level probe to a peer gateway over mTLS",
    ["cluster"] as const,
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
  );
  readonly probes = this.counter("meridian_gateway_peer_probes_total", "Probes of peer gateways by result", [
    "cluster",
    "result",
  ] as const);
  readonly routingDecisions = this.talliedCounter(
    "meridian_gateway_routing_decisions_total",
    "Target cluster chosen for new connections, by service, cluster and tier origin",
    ["service", "cluster", "origin"] as const,
  );
  readonly routingShare = this.gauge(
    "meridian_gateway_routing_share",
    "Current share (0-1) of a service's new connections that each cluster gets",
    ["service", "cluster"] as const,
  );
  readonly poolIdle = this.talliedGauge(
    "meridian_gateway_pool_idle_connections",
    "Warm, authenticated idle connections per peer gateway (a connection per stream)",
    ["cluster"] as const,
  );
  readonly muxConnections = this.talliedGauge(
    "meridian_gateway_mux_connections",
    "Open multiplexed connections to each peer gateway",
    ["cluster"] as const,
  );
  readonly muxChannels = this.talliedGauge(
    "meridian_gateway_mux_channels",
    "Streams open as channels on the multiplexed connections to each peer gateway",
    ["cluster"] as const,
  );
  readonly muxInFlightWindow = this.talliedGauge(
    "meridian_gateway_mux_in_flight_window_bytes",
    "Bytes the multiplexed connections to each peer gateway let travel before the peer has read them, as measured (summed over the connections; 0 for a peer that does not answer probes)",
    ["cluster"] as const,
  );
  readonly poolReuse = this.talliedCounter(
    "meridian_gateway_pool_acquisitions_total",
    "Connections taken for a stream: warm (idle, already authenticated) or new (handshake on demand)",
    ["cluster", "kind"] as const,
  );

  /**
   * Reports, when scraped, the descriptors counted against the open-file budget: those proxied
   * streams hold, those idle connections of a stream each hold, and the budget.
   */
  watchDescriptors(read: () => { streams: number; idle: number; budget: number }): void {
    new Gauge({
      name: "meridian_gateway_file_descriptors",
      help: "File descriptors counted against the open-file budget, by kind: held by proxied streams, by idle connections of a stream each, and the budget",
      labelNames: ["kind"] as const,
      registers: [this.registry],
      collect() {
        const now = read();
        this.set({ kind: "streams" }, now.streams);
        this.set({ kind: "idle" }, now.idle);
        this.set({ kind: "budget" }, now.budget);
      },
    });
  }

  private readonly streamSumsCache = new ThreeKeyCache<StreamSums>();
  private readonly decisionSums = new ThreeKeyCache<TallySum>();

  /** The sums a connection touches, resolved once per label set (a connection's metrics are its hot path's). */
  streamSums(direction: "outbound" | "inbound", service: string, cluster: string): StreamSums {
    return this.streamSumsCache.get(direction, service, cluster, () => {
      const labels = { direction, service, cluster };
      return {
        active: this.connectionsActive.sum(labels),
        closed: this.connectionsTotal.sum({ ...labels, outcome: "closed" }),
        aborted: this.connectionsTotal.sum({ ...labels, outcome: "aborted" }),
        sent: this.bytes.sum({ ...labels, flow: "sent" }),
        received: this.bytes.sum({ ...labels, flow: "received" }),
      };
    });
  }

  /** The count of connections to `service` sent to `cluster` from a tier of this origin. */
  routingDecision(service: string, cluster: string, origin: string): TallySum {
    return this.decisionSums.get(service, cluster, origin, () =>
      this.routingDecisions.sum({ service, cluster, origin }),
    );
  }

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
