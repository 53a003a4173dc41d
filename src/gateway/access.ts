/**
 * Who may consume an exported service through this cluster's gateway. Pure; decided at the
 * exporting side, where the export's owner controls it. The source cluster is the identity in the
 * peer gateway's certificate; the source namespace, when there is one, is what that gateway says
 * of its own client (see protocol.ts), so a namespace rule trusts the named cluster's gateway to
 * tell its namespaces apart, and nothing more.
 */
import type { PeerIdentity } from "./trust.js";

/** One allow entry: a cluster (or `*`), optionally narrowed to namespaces. */
export interface AccessEntry {
  cluster: string;
  /**
   * Only clients in one of these namespaces of that cluster. A connection whose namespace the
   * source gateway could not tell never matches such an entry: it fails closed, not open.
   */
  namespaces?: string[];
}

const CLUSTER_ID = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;
const NAMESPACE = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/** The items of a comma-separated allow list, as written (`east, west/web, *\/monitoring`). */
export function allowedItems(raw: string): string[] {
  return raw
    .split(",")
    .map((c) => c.trim())
    .filter((c) => c !== "");
}

/**
 * Allow entries from items `cluster` (all of it), `cluster/namespace` or `*` for any cluster.
 * Items that are neither come back in `invalid` and allow nothing, so a typo narrows access
 * instead of widening it.
 */
export function parseAllowedConsumers(items: string[]): { entries: AccessEntry[]; invalid: string[] } {
  const wholeClusters: AccessEntry[] = [];
  const byCluster = new Map<string, string[]>();
  const invalid: string[] = [];
  for (const item of items) {
    const [cluster = "", namespace, extra] = item.split("/");
    const clusterOk = cluster === "*" || CLUSTER_ID.test(cluster);
    if (!clusterOk || extra !== undefined || (namespace !== undefined && !NAMESPACE.test(namespace))) {
      invalid.push(item);
    } else if (namespace === undefined) {
      if (!wholeClusters.some((e) => e.cluster === cluster)) wholeClusters.push({ cluster });
    } else {
      const namespaces = byCluster.get(cluster) ?? [];
      if (!namespaces.includes(namespace)) namespaces.push(namespace);
      byCluster.set(cluster, namespaces);
    }
  }
  const scoped = [...byCluster].map(([cluster, namespaces]) => ({ cluster, namespaces }));
  return { entries: [...wholeClusters, ...scoped], invalid };
}

/** What `entries` let `cluster` reach: all its namespaces, only some, or nothing. */
export function accessOfCluster(entries: AccessEntry[], cluster: string): "all" | "none" | string[] {
  const matching = entries.filter((e) => e.cluster === "*" || e.cluster === cluster);
  if (matching.some((e) => !e.namespaces)) return "all";
  const namespaces = [...new Set(matching.flatMap((e) => e.namespaces ?? []))];
  return namespaces.length > 0 ? namespaces : "none";
}

export type AccessDefault = "allow" | "deny";

export type AccessDecision =
  | { allowed: true; because: "default-allow" | "rule"; rule?: AccessEntry }
  | { allowed: false; because: "default-deny" | "no-matching-rule" };

/**
 * `allow` undefined: the clusterset default applies. `allow` defined (even empty): only the listed
 * consumers, whatever the default — an explicit list always wins over the default.
 */
export function decideAccess(
  source: PeerIdentity,
  allow: AccessEntry[] | undefined,
  fallback: AccessDefault,
): AccessDecision {
  if (allow === undefined) {
    return fallback === "allow"
      ? { allowed: true, because: "default-allow" }
      : { allowed: false, because: "default-deny" };
  }
  for (const rule of allow) {
    if (rule.cluster !== "*" && rule.cluster !== source.clusterId) continue;
    if (rule.namespaces && !(source.namespace && rule.namespaces.includes(source.namespace))) continue;
    return { allowed: true, because: "rule", rule };
  }
  return { allowed: false, because: "no-matching-rule" };
}
