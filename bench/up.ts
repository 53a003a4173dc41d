/**
 * How long `meridian up` takes for a hub and 3 members with cached binaries: fresh start, and
 * resume after `down` (data kept). Writes bench/results/up.json and prints a table.
 *
 *   node --import tsx bench/up.ts [--runs 3] [--members 3]
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { down, up } from "../src/local/clusterset.js";
import { readVersions } from "../src/local/binaries.js";

const { values } = parseArgs({
  options: { runs: { type: "string", default: "3" }, members: { type: "string", default: "3" } },
});
const runs = Number(values.runs);
const members = Number(values.members);

const fresh: number[] = [];
const resumed: number[] = [];
for (let i = 0; i < runs; i++) {
  const dir = mkdtempSync(path.join(os.tmpdir(), "meridian-bench-up-"));
  try {
    fresh.push((await up({ stateDir: dir, members })).seconds);
    await down(dir, false);
    resumed.push((await up({ stateDir: dir })).seconds);
  } finally {
    await down(dir, true);
  }
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const result = {
  benchmark: "meridian-up",
  date: new Date().toISOString(),
  machine: { cpus: os.cpus().length, memoryGiB: Math.round(os.totalmem() / 2 ** 30), node: process.version },
  versions: readVersions(),
  clusters: { hub: 1, members },
  runs,
  freshSeconds: fresh.map((s) => Number(s.toFixed(2))),
  resumeSeconds: resumed.map((s) => Number(s.toFixed(2))),
  freshMedianSeconds: Number(median(fresh).toFixed(2)),
  resumeMedianSeconds: Number(median(resumed).toFixed(2)),
  goalSeconds: 10,
};
const out = path.join(path.dirname(new URL(import.meta.url).pathname), "results", "up.json");
writeFileSync(out, JSON.stringify(result, null, 2) + "\n");
console.log(`| meridian up (hub + ${members}) | median | runs |`);
console.log(`|---|---|---|`);
console.log(`| fresh state dir | ${result.freshMedianSeconds} s | ${result.freshSeconds.join(", ")} |`);
console.log(`| resume after down | ${result.resumeMedianSeconds} s | ${result.resumeSeconds.join(", ")} |`);
console.log(`wrote ${out}`);
