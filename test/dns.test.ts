/**
 * clusterset.local DNS on the running local clusterset, seen the way users see it: `dig` inside a
 * member's network (`meridian exec <member> -- dig ...`), answers coming from that member's own
 * ServiceImports and MCS EndpointSlices, which the tests write as the mcs-controller would.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { KubernetesObject } from "@kubernetes/client-node";
import { mcsEndpointSlice, serviceImport } from "../src/dns/objects.js";
import type { SliceEndpoint } from "../src/dns/objects.js";
import { inNamespace } from "../src/local/network.js";
import { clusterset, eventually, meridian, runCommand, testNamespace } from "./harness.js";
import type { TestClusterset } from "./harness.js";

const ZONE = "clusterset.local";

interface Dig {
  status: string;
  flags: string[];
  answer: string[];
  authority: string[];
  additional: string[];
}

/**
 * Runs dig in `member`'s network with the resolver `meridian exec` gives it (`ip netns exec` mounts
 * /etc/netns/<ns>/resolv.conf), and parses its output. Calls `ip netns exec` directly, as
 * `meridian exec` does, so that timing assertions measure DNS and not the CLI's start-up; the first
 * test goes through `meridian exec` itself.
 */
async function dig(cs: TestClusterset, member: string, ...args: string[]): Promise<Dig> {
  const nodeNamespace = cs.record.clusters.find((c) => c.name === member)!.network!.nodeNamespace;
  const result = await runCommand(
    inNamespace(nodeNamespace, ["dig", "+noshort", "+time=2", "+tries=2", ...args]),
    { timeoutMs: 20_000 },
  );
  assert.equal(result.code, 0, `dig ${args.join(" ")} in ${member} failed: ${result.stderr}${result.stdout}`);
  const out = result.stdout;
  const section = (name: string): string[] => {
    const match = new RegExp(`;; ${name} SECTION:\\n([\\s\\S]*?)(?:\\n\\n|$)`).exec(out);
    return (match?.[1] ?? "")
      .split("\n")
      .filter((l) => l && !l.startsWith(";"))
      .map((l) => l.split(/\s+/).join(" "))
      .sort();
  };
  return {
    status: /status: (\w+)/.exec(out)?.[1] ?? "NO-ANSWER",
    flags: (/;; flags: ([^;]*);/.exec(out)?.[1] ?? "").trim().split(" "),
    answer: section("ANSWER"),
    authority: section("AUTHORITY"),
    additional: section("ADDITIONAL").filter((l) => !l.includes("OPT")),
  };
}

/** The data column of each answer line. */
const data = (d: Dig): string[] => d.answer.map((l) => l.split(" ").slice(4).join(" ")).sort();

async function apply(cs: TestClusterset, member: string, ...objects: KubernetesObject[]): Promise<void> {
  for (const o of objects) await cs.client(member).apply(o, "dns-test");
}

describe("clusterset.local DNS in each member", async () => {
  const cs = await clusterset();
  const [west, east] = cs.members as [string, string];
  const ns = await testNamespace(cs, [west, east], "dns");
  const name = (svc: string, prefix = ""): string => `${prefix}${svc}.${ns}.svc.${ZONE}`;
  const http = { name: "http", protocol: "TCP" as const, port: 80 };

  test("meridian status shows each member's DNS address", async () => {
    const result = await meridian(["status", "-o", "json"], { stateDir: cs.stateDir });
    const status = JSON.parse(result.stdout) as { clusters: { name: string; dns?: { address: string } }[] };
    for (const member of cs.members) {
      const node = cs.record.clusters.find((c) => c.name === member)!.network!.nodeAddress;
      assert.equal(status.clusters.find((c) => c.name === member)?.dns?.address, `${node}:53`);
    }
  });

  test("dns-version TXT and the apex SOA, from the member's resolver", async () => {
    const viaCli = await meridian(["exec", west, "--", "dig", "+short", `dns-version.${ZONE}`, "TXT"], {
      stateDir: cs.stateDir,
      timeoutMs: 30_000,
    });
    assert.equal(viaCli.stdout.trim(), '"1.1.0"', `meridian exec west -- dig: ${viaCli.stderr}`);
    const version = await dig(cs, west, `dns-version.${ZONE}`, "TXT");
    assert.deepEqual(version.answer, [`dns-version.${ZONE}. 28800 IN TXT "1.1.0"`]);
    assert.ok(version.flags.includes("aa"));
    const soa = await dig(cs, west, ZONE, "SOA");
    assert.match(
      soa.answer[0] ?? "",
      new RegExp(
        `^${ZONE}\\. 5 IN SOA ns\\.dns\\.${ZONE}\\. hostmaster\\.${ZONE}\\. \\d+ 7200 1800 86400 5$`,
      ),
    );
  });

  test("ClusterSetIP: A/AAAA from spec.ips (dual-stack), SRV with glue, case echoed, only in the importing member", async () => {
    await apply(
      cs,
      west,
      serviceImport(ns, "web", {
        ips: ["10.96.10.10", "fd00:96::10"],
        ports: [http, { name: "dns", protocol: "UDP", port: 53 }],
      }),
    );
    const a = await eventually("west to answer A for web", async () => {
      const d = await dig(cs, west, name("web"), "A");
      return d.status === "NOERROR" && d.answer.length > 0 ? d : undefined;
    });
    assert.deepEqual(a.answer, [`${name("web")}. 5 IN A 10.96.10.10`]);
    assert.deepEqual(data(await dig(cs, west, name("web"), "AAAA")), ["fd00:96::10"]);
    const odd = await dig(cs, west, `WeB.${ns.toUpperCase()}.Svc.ClusterSet.Local`, "A");
    assert.deepEqual(odd.answer, [`WeB.${ns.toUpperCase()}.Svc.ClusterSet.Local. 5 IN A 10.96.10.10`]);
    const srv = await dig(cs, west, name("web", "_http._tcp."), "SRV");
    assert.deepEqual(data(srv), [`0 50 80 ${name("web")}.`]);
    assert.deepEqual(srv.additional, [
      `${name("web")}. 5 IN A 10.96.10.10`,
      `${name("web")}. 5 IN AAAA fd00:96::10`,
    ]);
    const bare = await dig(cs, west, name("web"), "SRV");
    assert.deepEqual(data(bare), [`0 25 53 ${name("web")}.`, `0 25 80 ${name("web")}.`]);
    assert.equal((await dig(cs, west, name("web", "_nope._tcp."), "SRV")).status, "NXDOMAIN");
    // east has no ServiceImport: its own DNS does not know the service.
    assert.equal((await dig(cs, east, name("web"), "A")).status, "NXDOMAIN");
  });

  test("negative answers: NXDOMAIN vs NODATA, each with the SOA", async () => {
    const missing = await dig(cs, west, name("missing"), "A");
    assert.equal(missing.status, "NXDOMAIN");
    assert.match(missing.authority[0] ?? "", new RegExp(`^${ZONE}\\. 5 IN SOA `));
    const nodata = await dig(cs, west, `${ns}.svc.${ZONE}`, "A");
    assert.equal(nodata.status, "NOERROR");
    assert.deepEqual(nodata.answer, []);
    assert.equal(nodata.authority.length, 1);
    assert.equal((await dig(cs, west, `web.no-such-namespace.svc.${ZONE}`, "A")).status, "NXDOMAIN");
    assert.equal((await dig(cs, west, `a.b.c.web.${ns}.svc.${ZONE}`, "A")).status, "NXDOMAIN");
    assert.equal((await dig(cs, west, "example.com", "A")).status, "REFUSED");
  });

  test("headless: ready endpoints of every cluster, per-endpoint names, SRV per endpoint; not-ready leave within a second", async () => {
    const endpoints = (ready: boolean): SliceEndpoint[] => [
      { addresses: ["10.244.1.50"], hostname: "db-0" },
      { addresses: ["10.244.1.51"], ready },
    ];
    await apply(
      cs,
      west,
      serviceImport(ns, "db", { type: "Headless", ports: [http] }),
      mcsEndpointSlice(ns, "db", "west", { ports: [http], endpoints: endpoints(true) }),
      mcsEndpointSlice(ns, "db", "east", { ports: [http], endpoints: [{ addresses: ["10.244.2.50"] }] }),
    );
    await eventually("all three db endpoints", async () => {
      const d = await dig(cs, west, name("db"), "A");
      return d.answer.length === 3 ? d : undefined;
    });
    assert.deepEqual(data(await dig(cs, west, name("db"), "A")), [
      "10.244.1.50",
      "10.244.1.51",
      "10.244.2.50",
    ]);
    assert.deepEqual(data(await dig(cs, west, name("db", "db-0.west."), "A")), ["10.244.1.50"]);
    assert.deepEqual(data(await dig(cs, west, name("db", "10-244-2-50.east."), "A")), ["10.244.2.50"]);
    assert.equal((await dig(cs, west, name("db", "db-0.east."), "A")).status, "NXDOMAIN", "wrong cluster");
    assert.equal((await dig(cs, west, name("db", "west."), "A")).status, "NXDOMAIN", "cluster id alone");
    const srv = await dig(cs, west, name("db", "_http._tcp."), "SRV");
    assert.deepEqual(data(srv), [
      `0 33 80 10-244-1-51.west.${name("db")}.`,
      `0 33 80 10-244-2-50.east.${name("db")}.`,
      `0 33 80 db-0.west.${name("db")}.`,
    ]);
    assert.equal(srv.additional.length, 3, "glue for each target");

    const changed = Date.now();
    await apply(cs, west, mcsEndpointSlice(ns, "db", "west", { ports: [http], endpoints: endpoints(false) }));
    await eventually(
      "10.244.1.51 to leave the answer",
      async () => {
        const d = await dig(cs, west, name("db"), "A");
        return d.answer.length === 2 ? d : undefined;
      },
      10_000,
    );
    const elapsed = Date.now() - changed;
    // The issue asks for one second; the budget adds the API server's write and the polling interval
    // on a 2-core machine shared with other test runs.
    assert.ok(elapsed < 3000, `not-ready endpoint left the answer after ${elapsed} ms`);
    assert.equal((await dig(cs, west, name("db", "10-244-1-51.west."), "A")).status, "NXDOMAIN");
  });

  test("headless with no ready endpoint is NXDOMAIN; export and unexport show up within a second", async () => {
    const idleSlice = (ready: boolean) =>
      mcsEndpointSlice(ns, "idle", "west", {
        ports: [http],
        endpoints: [{ addresses: ["10.244.1.60"], ready }],
      });
    await apply(cs, west, serviceImport(ns, "idle", { type: "Headless", ports: [http] }), idleSlice(false));
    const started = Date.now();
    await apply(cs, west, serviceImport(ns, "fresh", { ips: ["10.96.10.20"], ports: [http] }));
    await eventually("fresh to resolve", async () => {
      const d = await dig(cs, west, name("fresh"), "A");
      return d.answer.length === 1 ? d : undefined;
    });
    assert.ok(Date.now() - started < 3000, `new import answered after ${Date.now() - started} ms`);
    // idle was written before fresh, so the server has seen it: no ready endpoint, no name.
    assert.equal((await dig(cs, west, name("idle"), "A")).status, "NXDOMAIN");
    await apply(cs, west, idleSlice(true));
    await eventually("idle's endpoint to become ready", async () => {
      const d = await dig(cs, west, name("idle"), "A");
      return d.answer.length === 1 ? d : undefined;
    });
    const deleted = Date.now();
    await cs.client(west).deleteIfExists(serviceImport(ns, "fresh", { ports: [] }));
    await eventually("fresh to disappear", async () => {
      const d = await dig(cs, west, name("fresh"), "A");
      return d.status === "NXDOMAIN" ? d : undefined;
    });
    assert.ok(Date.now() - deleted < 3000, `deleted import gone after ${Date.now() - deleted} ms`);
  });

  test("UDP truncation sets TC and dig retries over TCP for the whole answer", async () => {
    await apply(
      cs,
      west,
      serviceImport(ns, "many", { type: "Headless", ports: [http] }),
      mcsEndpointSlice(ns, "many", "west", {
        ports: [http],
        endpoints: Array.from({ length: 80 }, (_, i) => ({ addresses: [`10.244.1.${100 + i}`] })),
      }),
    );
    const full = await eventually("80 answers over TCP retry", async () => {
      const d = await dig(cs, west, name("many"), "A", "+bufsize=512");
      return d.answer.length === 80 ? d : undefined;
    });
    assert.equal(full.status, "NOERROR");
    const truncated = await dig(cs, west, name("many"), "A", "+bufsize=512", "+ignore");
    assert.ok(truncated.flags.includes("tc"), `flags: ${truncated.flags.join(" ")}`);
    assert.ok(truncated.answer.length < 80);
  });

  test("a process run as a pod resolves clusterset names with its member's DNS (search path included)", async () => {
    const result = await meridian(
      ["run", west, "-n", ns, "--name", "resolver", "--", "dig", "+short", "+search", "web", "A"],
      { stateDir: cs.stateDir, timeoutMs: 60_000 },
    );
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout.trim(), "10.96.10.10");
  });
});
