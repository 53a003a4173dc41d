/**
 * A component's running totals, published as a ConfigMap in its own cluster
 * (`meridian-<component>-stats`, key `stats.json`) so the dashboard can show traffic and query
 * rates through the API servers alone: in a real install, the hub cannot reach members' pods.
 */
import type { V1ConfigMap } from "@kubernetes/client-node";
import type { Registry } from "prom-client";
import { ConfigMapPublisher } from "../kube/configmap-publisher.js";
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

/**
 * The component's stats, written to `meridian-<component>-stats` at most once per interval: when
 * they changed, else every sixth interval, so readers see rates fall to zero.
 */
export function statsPublisher(
  rest: RestClient,
  namespace: string,
  component: string,
  read: () => Promise<Omit<StatsReport, "at">>,
  onError: (err: unknown) => void,
  intervalMs = 10_000,
): ConfigMapPublisher<Omit<StatsReport, "at">> {
  return new ConfigMapPublisher({
    rest,
    fieldManager: `meridian-${component}`,
    namespace,
    name: statsConfigMapName(component),
    key: STATS_KEY,
    read,
    stamp: (doc): StatsReport => ({ at: new Date().toISOString(), ...doc }),
    onError,
    intervalMs,
    refreshEvery: 6,
  });
}
