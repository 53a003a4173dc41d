/**
 * Traffic policy: which cluster serves the next connection to a multi-cluster service. Pure: the
 * health of clusters is passed in, the only state is the smooth weighted round-robin counters.
 *
 * `TrafficPolicySpec` mirrors the `spec` of the `TrafficPolicy` CRD (`meridian.dev/v1alpha1`,
 * deploy/crds/meridian.dev_trafficpolicies.yaml), so the controller can hand it over unchanged.
 *
 * Order of choice:
 * 1. Tiers. With `failover` tiers, they come in the order given; clusters named in no tier follow
 *    (`unlisted: Fallback`, the default) or are never used (`Exclude`). Without tiers and with
 *    `locality: PreferLocal` (default), tiers are: this cluster, same zone, same region, the rest.
 *    With `locality: None`, every cluster is in one tier.
 * 2. The first tier with a usable cluster (ready endpoints, healthy, not ejected) wins: lower tiers
 *    get nothing while it has one. That is failover.
 * 3. Within the tier, smooth weighted round robin by weight. Weights are the tier entry's weight,
 *    else `weights`, else (when the policy names no weights at all) the cluster's ready endpoint
 *    count, so that an unweighted service behaves like one service spread over its endpoints.
 *    A weight of 0 drains a cluster: it is used only when no weighted cluster is usable anywhere.
 */

export interface Locality {
  region?: string;
  zone?: string;
}

export interface ClusterWeight {
  cluster: string;
  /** 0–10000; relative within its tier. */
  weight?: number;
}

export interface FailoverTier {
  clusters: ClusterWeight[];
}

export interface OutlierDetectionSpec {
  /** Connect failures in a row before a cluster is ejected (default 3). */
  consecutiveFailures?: number;
  /** First ejection; doubles with each ejection in a row (default 5). */
  baseEjectionSeconds?: number;
  maxEjectionSeconds?: number;
}

/** The `spec` of `TrafficPolicy` (meridian.dev/v1alpha1), minus `serviceRef`. */
export interface TrafficPolicySpec {
  locality?: "PreferLocal" | "None";
  failover?: FailoverTier[];
  unlisted?: "Fallback" | "Exclude";
  weights?: ClusterWeight[];
  outlierDetection?: OutlierDetectionSpec;
}

/** A cluster that exports the service, as the routing table knows it. */
export interface ClusterCandidate {
  clusterId: string;
  locality: Locality;
  readyEndpoints: number;
}

export interface TierMember {
  clusterId: string;
  weight: number;
}

/** Why a tier exists, for status output. */
export type TierOrigin = "local" | "zone" | "region" | "any" | "failover" | "unlisted" | "drained";

export interface Tier {
  origin: TierOrigin;
  members: TierMember[];
}

function weightOf(spec: TrafficPolicySpec, c: ClusterCandidate, tierWeight?: number): number {
  if (tierWeight !== undefined) return tierWeight;
  const named = spec.weights?.find((w) => w.cluster === c.clusterId);
  if (named) return named.weight ?? 1;
  if (spec.weights && spec.weights.length > 0) return 0;
  return c.readyEndpoints;
}

function localityTiers(
  self: { clusterId: string; locality: Locality },
  cs: ClusterCandidate[],
): Array<[TierOrigin, ClusterCandidate[]]> {
  const groups: Record<"local" | "zone" | "region" | "any", ClusterCandidate[]> = {
    local: [],
    zone: [],
    region: [],
    any: [],
  };
  for (const c of cs) {
    const sameRegion = !!self.locality.region && c.locality.region === self.locality.region;
    if (c.clusterId === self.clusterId) groups.local.push(c);
    else if (sameRegion && !!self.locality.zone && c.locality.zone === self.locality.zone)
      groups.zone.push(c);
    else if (sameRegion) groups.region.push(c);
    else groups.any.push(c);
  }
  return (["local", "zone", "region", "any"] as const).map((k) => [k, groups[k]]);
}

/** The ordered tiers for a service, before health is considered. Deterministic. */
export function computeTiers(
  spec: TrafficPolicySpec,
  self: { clusterId: string; locality: Locality },
  candidates: ClusterCandidate[],
): Tier[] {
  const sorted = [...candidates].sort((a, b) => a.clusterId.localeCompare(b.clusterId));
  const byId = new Map(sorted.map((c) => [c.clusterId, c]));
  const tiers: Tier[] = [];
  const drained: TierMember[] = [];
  const place = (origin: TierOrigin, members: Array<[ClusterCandidate, number | undefined]>): void => {
    const weighted: TierMember[] = [];
    for (const [c, tierWeight] of members) {
      const weight = weightOf(spec, c, tierWeight);
      (weight > 0 ? weighted : drained).push({ clusterId: c.clusterId, weight });
    }
    if (weighted.length > 0) tiers.push({ origin, members: weighted });
  };
  const preferLocal = (spec.locality ?? "PreferLocal") === "PreferLocal";
  const byLocality = (origin: TierOrigin | undefined, cs: ClusterCandidate[]): void => {
    if (!preferLocal)
      return place(
        origin ?? "any",
        cs.map((c) => [c, undefined]),
      );
    for (const [o, group] of localityTiers(self, cs))
      place(
        origin ?? o,
        group.map((c) => [c, undefined]),
      );
  };
  if (spec.failover && spec.failover.length > 0) {
    const named = new Set<string>();
    for (const tier of spec.failover) {
      const members: Array<[ClusterCandidate, number | undefined]> = [];
      for (const entry of tier.clusters) {
        const c = byId.get(entry.cluster);
        if (c && !named.has(c.clusterId)) members.push([c, entry.weight]);
        named.add(entry.cluster);
      }
      place("failover", members);
    }
    if ((spec.unlisted ?? "Fallback") === "Fallback") {
      const rest = sorted.filter((c) => !named.has(c.clusterId));
      // Unlisted clusters keep the locality order among themselves, labelled as the fallback.
      if (preferLocal)
        for (const [, group] of localityTiers(self, rest))
          place(
            "unlisted",
            group.map((c) => [c, undefined]),
          );
      else
        place(
          "unlisted",
          rest.map((c) => [c, undefined]),
        );
    }
  } else {
    byLocality(undefined, sorted);
  }
  if (drained.length > 0)
    tiers.push({ origin: "drained", members: drained.map((m) => ({ ...m, weight: 1 })) });
  return tiers;
}

/** Tells the picker whether a cluster can take a connection for this service now. */
export type Usable = (clusterId: string) => boolean;

/**
 * Smooth weighted round robin (the nginx algorithm): for weights 5,1,1 it yields a,a,b,a,c,a,a —
 * exact proportions over every cycle and no bursts, unlike random choice. One per service.
 */
export class WeightedPicker {
  private readonly current = new Map<string, number>();

  /** Picks from the first tier with a usable member, skipping `exclude` (clusters already tried). */
  pick(
    tiers: Tier[],
    usable: Usable,
    exclude: ReadonlySet<string> = new Set(),
  ): { clusterId: string; tier: number } | undefined {
    for (let t = 0; t < tiers.length; t++) {
      const members = tiers[t]!.members.filter((m) => !exclude.has(m.clusterId) && usable(m.clusterId));
      if (members.length === 0) continue;
      let total = 0;
      let best: TierMember | undefined;
      let bestScore = -Infinity;
      for (const m of members) {
        const score = (this.current.get(m.clusterId) ?? 0) + m.weight;
        this.current.set(m.clusterId, score);
        total += m.weight;
        if (score > bestScore) {
          bestScore = score;
          best = m;
        }
      }
      this.current.set(best!.clusterId, bestScore - total);
      return { clusterId: best!.clusterId, tier: t };
    }
    return undefined;
  }
}

/** What `status` and metrics show for one member of a tier. */
export interface RoutedCluster {
  clusterId: string;
  tier: number;
  origin: TierOrigin;
  weight: number;
  usable: boolean;
  /** Share of new connections it gets now, 0–1. */
  share: number;
}

/** The effective shares given current health: only the active tier's usable members get traffic. */
export function effectiveRouting(tiers: Tier[], usable: Usable): RoutedCluster[] {
  const out: RoutedCluster[] = [];
  let active = -1;
  tiers.forEach((tier, t) => {
    const live = tier.members.filter((m) => usable(m.clusterId));
    if (active === -1 && live.length > 0) active = t;
    const total = live.reduce((s, m) => s + m.weight, 0);
    for (const m of tier.members) {
      const ok = usable(m.clusterId);
      out.push({
        clusterId: m.clusterId,
        tier: t,
        origin: tier.origin,
        weight: m.weight,
        usable: ok,
        share: t === active && ok ? m.weight / total : 0,
      });
    }
  });
  return out;
}

/** Checks a policy spec the way the CRD schema does, with messages naming the field. */
export function validatePolicy(spec: TrafficPolicySpec): string[] {
  const errors: string[] = [];
  const checkWeight = (w: ClusterWeight, where: string): void => {
    if (!/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(w.cluster))
      errors.push(`${where}.cluster: "${w.cluster}" is not a cluster id`);
    if (w.weight !== undefined && !(Number.isInteger(w.weight) && w.weight >= 0 && w.weight <= 10000))
      errors.push(`${where}.weight: must be an integer 0–10000`);
  };
  spec.weights?.forEach((w, i) => checkWeight(w, `weights[${i}]`));
  spec.failover?.forEach((t, i) =>
    t.clusters.forEach((w, j) => checkWeight(w, `failover[${i}].clusters[${j}]`)),
  );
  const od = spec.outlierDetection;
  if (od?.consecutiveFailures !== undefined && !(od.consecutiveFailures >= 1))
    errors.push("outlierDetection.consecutiveFailures: must be ≥ 1");
  if (od?.baseEjectionSeconds !== undefined && !(od.baseEjectionSeconds > 0))
    errors.push("outlierDetection.baseEjectionSeconds: must be > 0");
  return errors;
}
