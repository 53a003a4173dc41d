/**
 * Who may consume an exported service through this cluster's gateway. Pure; decided at the
 * exporting side, where the export's owner controls it, from the identity in the peer's
 * certificate (never from anything the peer writes in the stream header).
 */
import type { PeerIdentity } from "./trust.js";

/** One allow entry: a cluster (or `*`), optionally narrowed to namespaces. */
export interface AccessEntry {
  cluster: string;
  /**
   * Only identities that carry one of these namespaces. A gateway's identity carries no
   * namespace, so an entry with namespaces never matches gateway-to-gateway traffic until
   * workload identities are forwarded; it fails closed, not open.
   */
  namespaces?: string[];
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
