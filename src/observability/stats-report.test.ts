import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Counter, Registry } from "prom-client";
import { parseStatsReport, registryTotals, statsConfigMapName } from "./stats-report.js";

describe("registryTotals", () => {
  it("sums a metric over its labels, and splits it by one label when asked", async () => {
    const registry = new Registry();
    const refusals = new Counter({
      name: "refusals_total",
      help: "h",
      labelNames: ["reason", "cluster"],
      registers: [registry],
    });
    refusals.inc({ reason: "access-denied", cluster: "west" }, 3);
    refusals.inc({ reason: "access-denied", cluster: "north" }, 2);
    refusals.inc({ reason: "expired", cluster: "west" }, 1);
    const totals = await registryTotals(registry, [
      { metric: "refusals_total", short: "refusals", by: "reason" },
      { metric: "absent_total", short: "absent" },
    ]);
    assert.deepEqual(totals, { refusals: 6, "refusals{access-denied}": 5, "refusals{expired}": 1 });
  });
});

describe("parseStatsReport", () => {
  const cm = (raw: string) => ({ data: { "stats.json": raw } });
  it("reads a report and refuses anything malformed instead of throwing", () => {
    assert.deepEqual(parseStatsReport(cm('{"at":"2026-11-22T10:00:00Z","counters":{"queries":4}}')), {
      at: "2026-11-22T10:00:00Z",
      counters: { queries: 4 },
    });
    assert.equal(parseStatsReport(cm("{not json")), undefined);
    assert.equal(parseStatsReport(cm('{"counters":{}}')), undefined, "no time stamp");
    assert.equal(parseStatsReport(cm('{"at":"x","counters":null}')), undefined);
    assert.equal(parseStatsReport({ data: {} }), undefined);
    assert.equal(parseStatsReport(undefined), undefined);
  });

  it("names the ConfigMap after the component", () => {
    assert.equal(statsConfigMapName("dns"), "meridian-dns-stats");
  });
});
