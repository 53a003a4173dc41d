import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import type { ClusterCandidate, TrafficPolicySpec } from "./policy.js";
import { computeTiers, effectiveRouting, validatePolicy, WeightedPicker } from "./policy.js";

const self = { clusterId: "west", locality: { region: "eu", zone: "eu-a" } };
const c = (clusterId: string, region: string, zone: string, readyEndpoints = 1): ClusterCandidate => ({
  clusterId,
  locality: { region, zone },
  readyEndpoints,
});
const fleet = [
  c("west", "eu", "eu-a", 2),
  c("west2", "eu", "eu-a"),
  c("east", "eu", "eu-b"),
  c("far", "us", "us-a", 5),
];

function picks(
  spec: TrafficPolicySpec,
  candidates: ClusterCandidate[],
  n: number,
  usable = (_: string) => true,
) {
  const tiers = computeTiers(spec, self, candidates);
  const picker = new WeightedPicker();
  const counts: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const p = picker.pick(tiers, usable);
    const key = p?.clusterId ?? "none";
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return counts;
}

describe("locality order", () => {
  it("prefers this cluster, then the same zone, then the region, then anywhere", () => {
    const tiers = computeTiers({}, self, fleet);
    assert.deepEqual(
      tiers.map((t) => [t.origin, t.members.map((m) => m.clusterId)]),
      [
        ["local", ["west"]],
        ["zone", ["west2"]],
        ["region", ["east"]],
        ["any", ["far"]],
      ],
    );
  });

  it("moves to the next locality tier only when the nearer one has nothing usable", () => {
    assert.deepEqual(picks({}, fleet, 10), { west: 10 });
    assert.deepEqual(
      picks({}, fleet, 10, (id) => id !== "west"),
      { west2: 10 },
    );
    assert.deepEqual(
      picks({}, fleet, 10, (id) => id === "east" || id === "far"),
      { east: 10 },
    );
    assert.deepEqual(
      picks({}, fleet, 10, (id) => id === "far"),
      { far: 10 },
    );
    assert.deepEqual(
      picks({}, fleet, 3, () => false),
      { none: 3 },
    );
  });

  it("with locality None, spreads over every cluster by ready endpoints", () => {
    assert.deepEqual(picks({ locality: "None" }, fleet, 90), { west: 20, west2: 10, east: 10, far: 50 });
  });
});

describe("failover tiers with weights", () => {
  const rollout: TrafficPolicySpec = {
    failover: [
      {
        clusters: [
          { cluster: "east", weight: 90 },
          { cluster: "far", weight: 10 },
        ],
      },
      { clusters: [{ cluster: "west2" }] },
    ],
    unlisted: "Exclude",
  };

  it("splits by weight within the first tier (story 3: 90/10 rollout)", () => {
    assert.deepEqual(picks(rollout, fleet, 1000), { east: 900, far: 100 });
  });

  it("keeps weights among the survivors and fails over to the next tier when the tier is gone", () => {
    assert.deepEqual(
      picks(rollout, fleet, 100, (id) => id !== "east"),
      { far: 100 },
    );
    assert.deepEqual(
      picks(rollout, fleet, 100, (id) => id === "west2" || id === "west"),
      { west2: 100 },
    );
  });

  it("never uses excluded clusters, even as a last resort", () => {
    assert.deepEqual(
      picks(rollout, fleet, 5, (id) => id === "west"),
      { none: 5 },
    );
  });

  it("puts unlisted clusters after the named tiers, in locality order, by default", () => {
    const tiers = computeTiers({ failover: [{ clusters: [{ cluster: "far" }] }] }, self, fleet);
    assert.deepEqual(
      tiers.map((t) => [t.origin, t.members.map((m) => m.clusterId)]),
      [
        ["failover", ["far"]],
        ["unlisted", ["west"]],
        ["unlisted", ["west2"]],
        ["unlisted", ["east"]],
      ],
    );
  });

  it("drains weight-0 clusters: used only when nothing weighted is usable", () => {
    const spec: TrafficPolicySpec = {
      locality: "None",
      weights: [
        { cluster: "east", weight: 0 },
        { cluster: "far", weight: 1 },
      ],
    };
    assert.deepEqual(picks(spec, fleet, 10), { far: 10 });
    // west and west2 are unnamed in a weighted policy: drained too, so all three share the last resort.
    assert.deepEqual(
      picks(spec, fleet, 9, (id) => id !== "far"),
      { east: 3, west: 3, west2: 3 },
    );
  });

  it("honours any weights within a tier to the exact proportion over whole cycles (property)", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 50 }), { minLength: 1, maxLength: 6 }), (weights) => {
        const candidates = weights.map((_, i) => c(`c${i}`, "x", "x"));
        const spec: TrafficPolicySpec = {
          locality: "None",
          weights: weights.map((w, i) => ({ cluster: `c${i}`, weight: w })),
        };
        const total = weights.reduce((a, b) => a + b, 0);
        const counts = picks(spec, candidates, total * 3);
        weights.forEach((w, i) => assert.equal(counts[`c${i}`], w * 3));
      }),
    );
  });

  it("does not burst: with weights 5,1,1 the heavy cluster never gets 5 in a row (random choice would, often)", () => {
    const spec: TrafficPolicySpec = {
      locality: "None",
      weights: [
        { cluster: "a", weight: 5 },
        { cluster: "b", weight: 1 },
        { cluster: "d", weight: 1 },
      ],
    };
    const tiers = computeTiers(spec, self, [c("a", "x", "x"), c("b", "x", "x"), c("d", "x", "x")]);
    const picker = new WeightedPicker();
    const seq = Array.from({ length: 14 }, () => picker.pick(tiers, () => true)!.clusterId).join("");
    assert.equal(seq.replace(/[^a]/g, "").length, 10, seq);
    assert.ok(!/aaaaa/.test(seq), seq);
  });
});

describe("effective routing for status", () => {
  it("gives shares only to usable members of the active tier", () => {
    const tiers = computeTiers({}, self, fleet);
    const r = effectiveRouting(tiers, (id) => id !== "west");
    assert.deepEqual(
      r.map((x) => [x.clusterId, x.share, x.usable]),
      [
        ["west", 0, false],
        ["west2", 1, true],
        ["east", 0, true],
        ["far", 0, true],
      ],
    );
  });
});

describe("validatePolicy", () => {
  it("names the bad field", () => {
    assert.deepEqual(validatePolicy({ weights: [{ cluster: "Bad_Name", weight: -1 }] }), [
      'weights[0].cluster: "Bad_Name" is not a cluster id',
      "weights[0].weight: must be an integer 0–10000",
    ]);
    assert.deepEqual(validatePolicy({ failover: [{ clusters: [{ cluster: "ok", weight: 3 }] }] }), []);
  });
});
