import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { clusterStatus } from "./cluster-status.js";

const now = new Date("2026-01-01T00:00:10Z");
const earlier = new Date("2026-01-01T00:00:00Z");
const pick = (s: ReturnType<typeof clusterStatus>, type: string) =>
  s.conditions.find((c) => c.type === type)!;

describe("clusterStatus", () => {
  it("is Ready once the member is reachable, authorised and synced", () => {
    const s = clusterStatus({ previous: [], health: { state: "ready" }, synced: true, now });
    assert.deepEqual([pick(s, "Ready").status, pick(s, "Ready").reason], ["True", "Ready"]);
    assert.deepEqual(
      [pick(s, "Reachable").status, pick(s, "Reachable").reason],
      ["True", "APIServerReachable"],
    );
  });

  it("says Syncing before the caches are filled, Connecting before the first probe", () => {
    assert.equal(
      pick(clusterStatus({ previous: [], health: { state: "ready" }, synced: false, now }), "Ready").reason,
      "Syncing",
    );
    const starting = clusterStatus({ previous: [], health: { state: "starting" }, synced: false, now });
    assert.equal(pick(starting, "Reachable").status, "Unknown");
  });

  it("tells unreachable apart from rejected credentials, and says what to do about the latter", () => {
    const down = clusterStatus({
      previous: [],
      health: { state: "unreachable", since: earlier.getTime(), error: "ECONNREFUSED" },
      synced: true,
      now,
    });
    assert.deepEqual(
      [pick(down, "Reachable").status, pick(down, "Ready").reason],
      ["False", "APIServerUnreachable"],
    );
    assert.match(pick(down, "Ready").message, /since 2026-01-01T00:00:00.000Z: ECONNREFUSED/);
    const denied = clusterStatus({
      previous: [],
      health: { state: "unauthorized", error: "HTTP 401" },
      synced: true,
      now,
    });
    assert.deepEqual(
      [pick(denied, "Reachable").status, pick(denied, "Ready").reason],
      ["True", "CredentialsRejected"],
    );
    assert.match(pick(denied, "Ready").message, /meridian join/);
  });

  it("reports a missing credentials Secret as the reason", () => {
    const s = clusterStatus({
      previous: [],
      health: undefined,
      synced: false,
      failure: { reason: "SecretNotFound", message: "Secret x/y does not exist" },
      now,
    });
    assert.deepEqual(
      [pick(s, "Ready").reason, pick(s, "Ready").message],
      ["SecretNotFound", "Secret x/y does not exist"],
    );
  });

  it("keeps the transition time while a condition's status holds", () => {
    const previous = [
      { type: "Ready", status: "True", reason: "Ready", message: "", lastTransitionTime: earlier },
    ];
    const same = clusterStatus({ previous, health: { state: "ready" }, synced: true, now });
    assert.equal(pick(same, "Ready").lastTransitionTime, earlier);
    const changed = clusterStatus({
      previous,
      health: { state: "unreachable", since: 0, error: "x" },
      synced: true,
      now,
    });
    assert.equal(pick(changed, "Ready").lastTransitionTime, now);
  });
});
