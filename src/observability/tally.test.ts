import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Registry } from "prom-client";
import { TalliedCounter, TalliedGauge } from "./tally.js";

/** What a scrape shows: `name{labels} value` lines, as Prometheus would read them. */
async function scrape(registry: Registry): Promise<string[]> {
  return (await registry.metrics()).split("\n").filter((l) => l !== "" && !l.startsWith("#"));
}

describe("tallied metrics", () => {
  it("sum a counter per label set and show the sums on every scrape, not adding them up again", async () => {
    const registry = new Registry();
    const bytes = new TalliedCounter({
      name: "t_bytes_total",
      help: "h",
      labelNames: ["flow", "peer"],
      registry,
    });
    const labels = { flow: "sent", peer: "east" };
    bytes.inc(labels, 100);
    bytes.inc({ peer: "east", flow: "sent" }, 50); // same set, other key order
    bytes.inc({ flow: "received", peer: "east" });
    labels.peer = "north"; // the caller's object changing later must not move a recorded sum
    const expected = [
      't_bytes_total{flow="sent",peer="east"} 150',
      't_bytes_total{flow="received",peer="east"} 1',
    ];
    assert.deepEqual(await scrape(registry), expected);
    assert.deepEqual(await scrape(registry), expected);
    bytes.inc({ flow: "sent", peer: "east" }, 10);
    assert.deepEqual((await scrape(registry))[0], 't_bytes_total{flow="sent",peer="east"} 160');
  });

  it("keep a gauge's level through inc, dec and set", async () => {
    const registry = new Registry();
    const active = new TalliedGauge({ name: "t_active", help: "h", labelNames: ["peer"], registry });
    active.inc({ peer: "east" });
    active.inc({ peer: "east" });
    active.dec({ peer: "east" });
    active.set({ peer: "west" }, 7);
    assert.deepEqual(await scrape(registry), ['t_active{peer="east"} 1', 't_active{peer="west"} 7']);
    active.dec({ peer: "east" });
    assert.deepEqual(await scrape(registry), ['t_active{peer="east"} 0', 't_active{peer="west"} 7']);
  });

  it("build a keyed counter's labels once per key", async () => {
    const registry = new Registry();
    const queries = new TalliedCounter({
      name: "t_queries_total",
      help: "h",
      labelNames: ["qtype"],
      registry,
    });
    let built = 0;
    const labelsOf = (qtype: number) => {
      built++;
      return { qtype: qtype === 1 ? "A" : `TYPE${qtype}` };
    };
    for (let i = 0; i < 5; i++) queries.incKeyed("1", labelsOf, 1);
    queries.incKeyed("99", labelsOf, 99);
    assert.equal(built, 2);
    assert.deepEqual(await scrape(registry), [
      't_queries_total{qtype="A"} 5',
      't_queries_total{qtype="TYPE99"} 1',
    ]);
  });

  it("hand a hot path the running sum of a label set, shared with inc and shown on scrape", async () => {
    const registry = new Registry();
    const active = new TalliedGauge({ name: "t_open", help: "h", labelNames: ["peer"], registry });
    const east = active.sum({ peer: "east" });
    assert.equal(active.sum({ peer: "east" }), east, "one sum per label set");
    east.value += 3;
    active.dec({ peer: "east" });
    east.value--;
    assert.deepEqual(await scrape(registry), ['t_open{peer="east"} 1']);
  });

  it("count without labels", async () => {
    const registry = new Registry();
    const truncated = new TalliedCounter({ name: "t_truncated_total", help: "h", labelNames: [], registry });
    truncated.inc({});
    truncated.inc({}, 2);
    assert.deepEqual(await scrape(registry), ["t_truncated_total 3"]);
  });
});
