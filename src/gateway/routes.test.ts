import assert from "node:assert/strict";
import { mkdtempSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import type { RoutingTable } from "./routes.js";
import { JsonFileRoutingSource, validateRoutingTable } from "./routes.js";

const good: RoutingTable = {
  peers: [{ clusterId: "east", host: "10.0.0.2", port: 15443 }],
  imports: [
    {
      service: "shop/web",
      port: 80,
      listenPort: 20001,
      clusters: [{ clusterId: "east", readyEndpoints: 2 }],
    },
  ],
  exports: [
    {
      service: "shop/api",
      port: 8080,
      endpoints: [{ address: "10.244.1.5", port: 8080 }],
      allow: [{ cluster: "west" }],
    },
  ],
};

describe("validateRoutingTable", () => {
  it("accepts a good table", () => {
    assert.deepEqual(validateRoutingTable(good), []);
  });

  it("names every bad field", () => {
    const bad = {
      peers: [good.peers[0]!, { clusterId: "east", host: "", port: 0 }],
      imports: [
        { ...good.imports[0]!, service: "web" },
        { ...good.imports[0]!, port: 81, policy: { weights: [{ cluster: "x", weight: -1 }] } },
      ],
      exports: [{ service: "shop/api", port: 8080, endpoints: [{ address: "", port: 70000 }] }],
      accessDefault: "maybe",
    } as unknown as RoutingTable;
    assert.deepEqual(validateRoutingTable(bad), [
      'peers[1].clusterId: duplicate "east"',
      "peers[1].host: required",
      "peers[1].port: 1–65535",
      "imports[0].service: must be namespace/name",
      "imports[1].policy.weights[0].weight: must be an integer 0–10000",
      "imports: two routes share a listenPort",
      "exports[0].endpoints[0].address: required",
      "exports[0].endpoints[0].port: 1–65535",
      'accessDefault: must be "allow" or "deny"',
    ]);
  });
});

describe("validateRoutingTable and UDP", () => {
  it("keeps TCP and UDP routes of one port apart, and refuses a protocol it cannot carry", () => {
    const udp = { ...good.imports[0]!, protocol: "UDP" as const };
    assert.deepEqual(
      validateRoutingTable({ ...good, imports: [good.imports[0]!, udp] }),
      [],
      "TCP and UDP may share a port number and a listenPort",
    );
    assert.deepEqual(validateRoutingTable({ ...good, imports: [udp, { ...udp, port: 81 }] }), [
      "imports: two routes share a listenPort",
    ]);
    assert.deepEqual(validateRoutingTable({ ...good, imports: [udp, udp] }), [
      "imports[1]: duplicate shop/web:80/UDP",
      "imports: two routes share a listenPort",
    ]);
    assert.deepEqual(validateRoutingTable({ ...good, imports: [{ ...udp, udpFlowIdleMs: 0 }] }), [
      "imports[0].udpFlowIdleMs: must be above 0",
    ]);
    const sctp = { ...good, exports: [{ ...good.exports[0]!, protocol: "SCTP" }] } as unknown as RoutingTable;
    assert.deepEqual(validateRoutingTable(sctp), ["exports[0].protocol: must be TCP or UDP"]);
  });
});

describe("JsonFileRoutingSource", () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "meridian-routes-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("reloads a changed file and keeps the last good table when the new one is invalid", async () => {
    const file = path.join(dir, "routes.json");
    writeFileSync(file, JSON.stringify(good));
    const errors: string[] = [];
    const source = new JsonFileRoutingSource(file, 20, (e) => errors.push(e.message));
    const seen: RoutingTable[] = [];
    source.subscribe((t) => seen.push(t));
    await source.start();
    try {
      const next = { ...good, exports: [] };
      writeFileSync(file, JSON.stringify(next));
      utimesSync(file, new Date(), new Date(Date.now() + 1000));
      await sleep(200);
      assert.deepEqual(source.current(), next);
      writeFileSync(file, "{ not json");
      utimesSync(file, new Date(), new Date(Date.now() + 2000));
      await sleep(200);
      assert.deepEqual(source.current(), next, "the last good table stays");
      assert.equal(seen.length, 1);
      assert.match(errors[0] ?? "", /routes file/);
    } finally {
      source.stop();
    }
  });

  it("refuses to start from an invalid file, naming the field", () => {
    const file = path.join(dir, "bad.json");
    writeFileSync(file, JSON.stringify({ peers: [], imports: [{ service: "x" }], exports: [] }));
    assert.throws(() => new JsonFileRoutingSource(file), /imports\[0\]\.service/);
  });
});
