/** The conditions of a Cluster in the registry, from what the controller knows of the member. */
import type { V1Condition } from "@kubernetes/client-node";
import type { MemberHealth } from "./member.js";

export interface ClusterStatusInput {
  previous: V1Condition[];
  generation?: number;
  health: MemberHealth | undefined;
  synced: boolean;
  /** The controller could not even build a client (missing Secret, bad kubeconfig). */
  failure?: { reason: string; message: string };
  now: Date;
}

type Status = "True" | "False" | "Unknown";

function verdict(input: ClusterStatusInput): {
  ready: [Status, string, string];
  reachable: [Status, string, string];
} {
  const reachable: [Status, string, string] = ["True", "APIServerReachable", "the API server answers"];
  const h = input.health;
  if (input.failure) {
    return {
      ready: ["False", input.failure.reason, input.failure.message],
      reachable: ["Unknown", input.failure.reason, input.failure.message],
    };
  }
  if (!h || h.state === "starting") {
    const msg = "connecting to the member's API server";
    return { ready: ["False", "Connecting", msg], reachable: ["Unknown", "Connecting", msg] };
  }
  if (h.state === "unreachable") {
    const msg = `API server unreachable since ${new Date(h.since).toISOString()}: ${h.error}; its endpoints are withdrawn from the clusterset`;
    return {
      ready: ["False", "APIServerUnreachable", msg],
      reachable: ["False", "APIServerUnreachable", msg],
    };
  }
  if (h.state === "unauthorized") {
    const msg =
      `the member's API server rejects Meridian's credentials (${h.error}); re-run 'meridian join' to issue new ones. ` +
      `Its endpoints are withdrawn from the clusterset`;
    return { ready: ["False", "CredentialsRejected", msg], reachable };
  }
  if (!input.synced)
    return { ready: ["False", "Syncing", "reading the member's exports and endpoints"], reachable };
  return { ready: ["True", "Ready", "exports and imports are reconciled with this member"], reachable };
}

/** `Ready` and `Reachable`, keeping each condition's transition time while its status holds. */
export function clusterStatus(input: ClusterStatusInput): { conditions: V1Condition[] } {
  const v = verdict(input);
  const cond = (type: string, [status, reason, message]: [Status, string, string]): V1Condition => {
    const old = input.previous.find((c) => c.type === type);
    return {
      type,
      status,
      reason,
      message,
      lastTransitionTime: old && old.status === status ? old.lastTransitionTime : input.now,
      ...(input.generation !== undefined ? { observedGeneration: input.generation } : {}),
    };
  };
  return { conditions: [cond("Ready", v.ready), cond("Reachable", v.reachable)] };
}
