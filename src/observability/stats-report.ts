/**
 * A component's running totals, published as a ConfigMap in its own cluster
 * (`meridian-<component>-stats`, key `stats.json`) so the dashboard can show traffic and query
 * rates through the API servers alone: in a real install, the hub cannot reach members' pods.
 * Written at most once per interval: when something changed, else every sixth interval.
 */
import type { KubernetesObject, V1ConfigMap } from "@kubernetes/client-node";
import type { Registry } from "prom-client";
import { Applier } from "../kube/applier.js";
import type { RestClient } from "../kube/rest.js";

export const STATS_KEY = "stats.json";

export interface StatsReport {
  /** When the totals were read. */
  at: string;
  counters: Record<string, number>;
  /** The controller's latest export-to-import propagation per service ("ns/name"). */
  propagation?: Record<string, { seconds: number; at: string }>;
}

export function statsConfigMapName(component: string): string {
  return `meridian-${component}-stats`;
}

export function parseStatsReport(configMap: V1ConfigMap | undefined): StatsReport | undefined {
  const raw = configMap?.data?.[STATS_KEY];
  if (raw === undefined) return undefined;
  try {
    const report = JSON.parse(raw) as Partial<StatsReport>;
    if (typeof report.at !== "string" || typeof report.counters !== "object" || report.counters === null)
      return undefined;
    return report as StatsReport;
  } catch {
    return undefined;
  }
}

/**
 * Totals of the named metrics in a registry, summed over their labels, keyed by `short` name. A
 * metric with a `by` label is also split by it (e.g. refusals by reason): "refusals{reason}".
 */
export async function registryTotals(
  registry: Registry,
  metrics: Array<{ metric: string; short: string; by?: string }>,
): Promise<Record<string, number>> {
  const totals: Record<string, number> = {};
  const all = await registry.getMetricsAsJSON();
  for (const { metric, short, by } of metrics) {
    const m = all.find((x) => x.name === metric);
    if (!m) continue;
    let sum = 0;
    for (const v of m.values as Array<{ value: number; labels: Record<string, string | number> }>) {
      sum += v.value;
      const label = by ? v.labels[by] : undefined;
      if (label !== undefined) totals[`${short}{${label}}`] = (totals[`${short}{${label}}`] ?? 0) + v.value;
    }
    totals[short] = sum;
  }
  return totals;
}

export class StatsPublisher {
  private readonly applier: Applier;
  private timer: NodeJS.Timeout | undefined;
  private last = "";
  private lastWrite = 0;

  constructor(
    rest: RestClient,
    private readonly namespace: string,
    private readonly component: string,
    private readonly read: () => Promise<Omit<StatsReport, "at">>,
    private readonly onError: (err: unknown) => void,
    private readonly intervalMs = 10_000,
  ) {
    this.applier = new Applier(rest, `meridian-${component}`);
  }

  start(): void {
    const tick = async (): Promise<void> => {
      await this.publish().catch(this.onError);
      this.timer = setTimeout(() => void tick(), this.intervalMs);
      this.timer.unref();
    };
    void tick();
  }

  stop(): void {
    clearTimeout(this.timer);
  }

  async publish(): Promise<void> {
    const content = await this.read();
    const comparable = JSON.stringify(content);
    // Unchanged totals are still rewritten now and then, so readers see rates fall to zero.
    if (comparable === this.last && Date.now() - this.lastWrite < 6 * this.intervalMs) return;
    const report: StatsReport = { at: new Date().toISOString(), ...content };
    const configMap: V1ConfigMap & KubernetesObject = {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: statsConfigMapName(this.component), namespace: this.namespace },
      data: { [STATS_KEY]: JSON.stringify(report) },
    };
    await this.applier.apply(configMap);
    this.last = comparable;
    this.lastWrite = Date.now();
  }
}
