import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { WorkQueue } from "./workqueue.js";

describe("WorkQueue", () => {
  it("processes a key added many times while queued only once", async () => {
    const seen: string[] = [];
    const q = new WorkQueue(async (k) => void seen.push(k), { concurrency: 1 });
    for (let i = 0; i < 5; i++) q.add("a");
    q.add("b");
    await q.idle();
    assert.deepEqual(seen, ["a", "b"]);
  });

  it("never runs a key concurrently with itself, and reprocesses a key added while it ran", async () => {
    let running = 0;
    let maxRunning = 0;
    let calls = 0;
    const q = new WorkQueue(
      async () => {
        calls++;
        running++;
        maxRunning = Math.max(maxRunning, running);
        await sleep(20);
        running--;
      },
      { concurrency: 4 },
    );
    q.add("k");
    await sleep(5);
    q.add("k");
    q.add("k");
    await q.idle();
    assert.equal(maxRunning, 1);
    assert.equal(calls, 2);
  });

  it("retries a failing key with backoff until it succeeds, reporting each result", async () => {
    let attempts = 0;
    const results: string[] = [];
    const q = new WorkQueue(
      async () => {
        attempts++;
        if (attempts < 3) throw new Error("not yet");
      },
      { backoff: { initialMs: 5, maxMs: 20 }, onResult: (_k, r) => results.push(r) },
    );
    q.add("k");
    await q.idle();
    assert.equal(attempts, 3);
    assert.deepEqual(results, ["error", "error", "success"]);
  });

  it("bounds concurrency across keys", async () => {
    let running = 0;
    let maxRunning = 0;
    const q = new WorkQueue(
      async () => {
        running++;
        maxRunning = Math.max(maxRunning, running);
        await sleep(10);
        running--;
      },
      { concurrency: 3 },
    );
    for (let i = 0; i < 20; i++) q.add(`k${i}`);
    await q.idle();
    assert.equal(maxRunning, 3);
  });

  it("drops everything once stopped", async () => {
    let calls = 0;
    const q = new WorkQueue(async () => void calls++);
    q.stop();
    q.add("a");
    q.addAfter("b", 1);
    await sleep(10);
    assert.equal(calls, 0);
  });
});
