/** Leader election through a Lease on a real API server: one leader at a time, fast hand-over. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { LeaderElector } from "../src/kube/leader.js";
import { RestClient } from "../src/kube/rest.js";
import { clusterset, eventually, uniqueName } from "./harness.js";

const cs = await clusterset();

describe("leader election", () => {
  it("elects exactly one of two candidates, and hands over when the leader steps down", async () => {
    const name = uniqueName("lease");
    const leading = new Set<string>();
    const lost: string[] = [];
    const candidate = (identity: string) =>
      new LeaderElector(new RestClient(identity, cs.client("hub").kubeConfig), {
        namespace: "default",
        name,
        identity,
        leaseDurationMs: 3000,
        renewDeadlineMs: 2000,
        retryPeriodMs: 500,
        onStartedLeading: () => leading.add(identity),
        onLost: () => lost.push(identity),
      });
    const a = candidate("a");
    const b = candidate("b");
    a.start();
    b.start();
    try {
      await eventually("a leader", () => (leading.size > 0 ? true : undefined));
      await new Promise((r) => setTimeout(r, 2000));
      assert.equal(leading.size, 1, `exactly one leader, got ${[...leading].join(",")}`);
      const [first] = [...leading];
      const [leader, follower] = first === "a" ? [a, b] : [b, a];
      const started = Date.now();
      await leader.stop(); // releases the lease
      await eventually(
        "the other candidate to take over",
        () => (follower.isLeader ? true : undefined),
        10_000,
      );
      assert.ok(Date.now() - started < 3000, "a released lease is taken at once, not after it expires");
      assert.deepEqual(lost, [], "stepping down is not losing");
    } finally {
      await a.stop();
      await b.stop();
    }
  });

  it("rejects timings that cannot work", () => {
    assert.throws(
      () =>
        new LeaderElector(new RestClient("x", cs.client("hub").kubeConfig), {
          namespace: "default",
          name: "x",
          identity: "x",
          leaseDurationMs: 1000,
          renewDeadlineMs: 2000,
          onStartedLeading: () => {},
          onLost: () => {},
        }),
      /leaseDuration > renewDeadline/,
    );
  });
});
