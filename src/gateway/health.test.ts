import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { HealthTracker, jitteredDelay } from "./health.js";

function clock() {
  let now = 1_000_000;
  return { now: () => now, advance: (ms: number) => void (now += ms) };
}

describe("HealthTracker", () => {
  it("counts an unprobed peer as available (no fail-fast before the first probe)", () => {
    assert.equal(new HealthTracker().available("east"), true);
  });

  it("takes a peer out after N failed probes and back after one success", () => {
    const t = clock();
    const h = new HealthTracker({ unhealthyAfter: 2, clock: t.now });
    h.probeResult("east", false);
    assert.equal(h.available("east"), true);
    h.probeResult("east", false);
    assert.equal(h.available("east"), false);
    assert.equal(h.snapshot("east").probe, "unhealthy");
    h.probeResult("east", true, 0.4);
    assert.deepEqual(h.snapshot("east"), {
      probe: "healthy",
      available: true,
      rttMs: 0.4,
      ejectedForMs: 0,
      consecutiveFailures: 0,
    });
  });

  it("ejects after consecutive connect failures, for exponentially longer each time", () => {
    const t = clock();
    const h = new HealthTracker({
      consecutiveFailures: 3,
      baseEjectionMs: 1000,
      maxEjectionMs: 3000,
      clock: t.now,
    });
    h.connectResult("east", false);
    h.connectResult("east", false);
    assert.equal(h.available("east"), true);
    h.connectResult("east", false);
    assert.equal(h.available("east"), false);
    t.advance(999);
    assert.equal(h.available("east"), false);
    t.advance(1);
    assert.equal(h.available("east"), true);
    for (let i = 0; i < 3; i++) h.connectResult("east", false);
    assert.equal(h.snapshot("east").ejectedForMs, 2000);
    t.advance(2000);
    for (let i = 0; i < 3; i++) h.connectResult("east", false);
    assert.equal(h.snapshot("east").ejectedForMs, 3000, "capped at the maximum");
  });

  it("resets the failure streak on success, so scattered failures never eject", () => {
    const h = new HealthTracker({ consecutiveFailures: 3 });
    for (let i = 0; i < 10; i++) {
      h.connectResult("east", false);
      h.connectResult("east", false);
      h.connectResult("east", true);
    }
    assert.equal(h.available("east"), true);
  });

  it("ejects at once on a definitive failure and lets a successful probe lift the ejection", () => {
    const t = clock();
    const h = new HealthTracker({ clock: t.now });
    h.connectResult("east", false, true);
    assert.equal(h.available("east"), false);
    h.probeResult("east", true, 1);
    assert.equal(h.available("east"), true);
  });

  it("puts a dead peer out of rotation within 5 s with the default probe settings (1 s ± 20%, timeout 1 s, 2 failures)", () => {
    // Worst case: the peer dies right after a successful probe; each later probe takes the
    // longest jittered interval and then times out.
    const worst = 2 * (jitteredDelay(1000, 0.2, () => 1) + 1000);
    assert.ok(worst <= 5000, `${worst} ms`);
  });
});

describe("jitteredDelay", () => {
  it("stays within ±jitter of the interval", () => {
    assert.equal(
      jitteredDelay(1000, 0.2, () => 0),
      800,
    );
    assert.equal(
      jitteredDelay(1000, 0.2, () => 1),
      1200,
    );
    assert.equal(
      jitteredDelay(1000, 0.2, () => 0.5),
      1000,
    );
  });
});
