import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { DeliveryWindow, IN_FLIGHT_FLOOR_MS, MIN_IN_FLIGHT } from "./mux-window.js";

const SEND_BUFFER = 4 * 2 ** 20;

/**
 * A sender with endless bytes to send over a path of `rate(now)` bytes per ms (first in, first
 * out) and a round trip of `rtt(now)` ms on top of its queue; the peer answers each probe as it
 * reads it. The connection probes once when it starts (as `MuxConnection` does); then steps of
 * `stepMs`, each sending in 32 KiB slices while the window allows and the kernel's send buffer
 * (4 MiB) has room, a probe following any slice it is due after, as the gateway's pump does.
 */
function simulate(
  rate: (now: number) => number,
  rtt: (now: number) => number,
  durationMs: number,
  stepMs: number,
  measureFromMs = durationMs / 2,
) {
  const window = new DeliveryWindow(0);
  let sent = 13;
  /** When the path has sent everything queued so far. */
  let pathFreeAt = 0;
  const answers: { tag: number; at: number }[] = [{ tag: window.probe(sent, 0), at: rtt(0) }];
  let carried = 0;
  let worstQueueMs = 0;
  for (let now = 0; now < durationMs; now += stepMs) {
    while (answers.length > 0 && answers[0]!.at <= now) window.answer(answers.shift()!.tag, now);
    const probeIfDue = (): void => {
      if (window.probeDue(sent)) answers.push({ tag: window.probe(sent, now), at: pathFreeAt + rtt(now) });
    };
    while (!window.full(sent) && (pathFreeAt - now) * rate(now) < SEND_BUFFER) {
      sent += 32 * 1024;
      const leaves = Math.max(pathFreeAt, now);
      pathFreeAt = leaves + (32 * 1024) / rate(now);
      if (leaves >= measureFromMs && pathFreeAt <= durationMs) carried += 32 * 1024;
      // What a frame written now waits behind: everything queued on the path.
      if (now >= measureFromMs) worstQueueMs = Math.max(worstQueueMs, pathFreeAt - now);
      probeIfDue();
    }
    probeIfDue();
  }
  const capacity = rate(durationMs) * (durationMs - measureFromMs);
  return { window, utilisation: carried / capacity, worstQueueMs };
}

describe("the delivery window", () => {
  it("holds a new connection to its least window until the peer answers its first probe", () => {
    const window = new DeliveryWindow(0);
    const tag = window.probe(13, 0);
    assert.equal(window.limit, MIN_IN_FLIGHT);
    assert.ok(window.full(13 + MIN_IN_FLIGHT - 1));
    assert.equal(window.answer(tag + 1, 2), false, "an answer to no probe changes nothing");
    assert.equal(window.answer(tag, 2), true);
    assert.equal(window.full(13 + MIN_IN_FLIGHT - 1), false, "the window counts from what the peer has read");
    assert.ok(window.limit >= MIN_IN_FLIGHT, `limit ${window.limit}`);
  });

  it("holds back a silent peer no more, and stops probing it", () => {
    const window = new DeliveryWindow(0);
    window.probe(13, 0);
    window.peerSilent();
    assert.equal(window.limit, Infinity);
    assert.equal(window.full(2 ** 40), false);
    assert.equal(window.probeDue(64 * 2 ** 20), false);
  });

  it("takes a peer that answers late after all", () => {
    const window = new DeliveryWindow(0);
    const tag = window.probe(13, 0);
    window.peerSilent();
    assert.equal(window.answer(tag, 1_500), true);
    assert.ok(Number.isFinite(window.limit), `limit ${window.limit}`);
    assert.ok(window.probeDue(13 + window.limit), "probed again");
  });

  it("probes at the end of a full window, so an answer always comes to open it", () => {
    const window = new DeliveryWindow(0);
    window.answer(window.probe(13, 0), 1);
    const sent = 13 + window.limit;
    assert.ok(window.full(sent));
    assert.ok(window.probeDue(sent), "a full window without a probe at its end would never open");
    window.answer(window.probe(sent, 2), 3);
    assert.equal(window.full(sent), false);
  });

  it("keeps a slow, long path full with about a round trip of queue (100 Mbit/s, 20 ms)", () => {
    const rate = 12_500; // bytes per ms
    const { utilisation, worstQueueMs } = simulate(
      () => rate,
      () => 20,
      3_000,
      1,
    );
    assert.ok(utilisation > 0.95, `path used ${(utilisation * 100).toFixed(1)}%`);
    // The kernel's send buffer alone would hold ~4 MiB here: over 300 ms.
    assert.ok(worstQueueMs < 2 * 20 + 10, `a new frame waited up to ${worstQueueMs.toFixed(1)} ms`);
  });

  it("keeps a fast, short path full with a few milliseconds of queue (400 MB/s, 0.2 ms)", () => {
    const rate = 400_000;
    const { window, utilisation, worstQueueMs } = simulate(
      () => rate,
      () => 0.2,
      300,
      0.05,
    );
    assert.ok(utilisation > 0.95, `path used ${(utilisation * 100).toFixed(1)}%`);
    assert.ok(
      worstQueueMs < IN_FLIGHT_FLOOR_MS + 2,
      `a new frame waited up to ${worstQueueMs.toFixed(2)} ms`,
    );
    // Probes come every half window: a floor of milliseconds keeps them to hundreds a second.
    assert.ok(window.limit >= rate * IN_FLIGHT_FLOOR_MS * 0.9, `limit ${window.limit}`);
  });

  it("follows a path that slows down within about a second", () => {
    const slower = (now: number) => (now < 1_000 ? 100_000 : 1_000);
    const { window, worstQueueMs } = simulate(slower, () => 1, 3_000, 1, 2_000);
    // At 1 MB/s and a 1 ms round trip the least window, 64 KiB; 4 ms at 100 MB/s was 400 KB.
    assert.equal(window.limit, MIN_IN_FLIGHT);
    assert.ok(worstQueueMs < 100, `a new frame waited up to ${worstQueueMs.toFixed(1)} ms`);
  });

  it("measures the round trip again when a standing queue hides it (a path that grew longer)", () => {
    const rate = 12_500;
    const longer = (now: number) => (now < 2_000 ? 1 : 50);
    const { window, utilisation } = simulate(() => rate, longer, 16_000, 1, 14_000);
    // With the 1 ms of the first seconds kept, the window would hold the path to a fifth of its rate.
    assert.ok(utilisation > 0.9, `path used ${(utilisation * 100).toFixed(1)}%`);
    assert.ok(window.limit > rate * 50, `limit ${window.limit}`);
  });
});
