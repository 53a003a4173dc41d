import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { buildFixtureZone, endpointSlice, FIXTURE_SERIAL, serviceImport } from "./fixtures.js";
import { RRType, Rcode } from "./records.js";
import type { DnsRecord, Resolution } from "./records.js";
import { isInZone, resolve, srvWeight, validateResolveOptions } from "./resolve.js";
import type { ResolveOptions } from "./resolve.js";
import { ClusterSetZone } from "./zone.js";

const ZONE = "clusterset.local";
const SOA = `${ZONE} 5 SOA ns.dns.${ZONE} hostmaster.${ZONE} ${FIXTURE_SERIAL} 7200 1800 86400 5`;
const OPTIONS: ResolveOptions = { zone: ZONE, ttl: 5 };

function show(record: DnsRecord): string {
  switch (record.type) {
    case RRType.A:
      return `${record.name} ${record.ttl} A ${record.address}`;
    case RRType.AAAA:
      return `${record.name} ${record.ttl} AAAA ${record.address}`;
    case RRType.SRV:
      return `${record.name} ${record.ttl} SRV ${record.priority} ${record.weight} ${record.port} ${record.target}`;
    case RRType.TXT:
      return `${record.name} ${record.ttl} TXT "${record.text}"`;
    case RRType.SOA:
      return `${record.name} ${record.ttl} SOA ${record.mname} ${record.rname} ${record.serial} ${record.refresh} ${record.retry} ${record.expire} ${record.minimum}`;
    case RRType.NS:
      return `${record.name} ${record.ttl} NS ${record.target}`;
  }
}

const rcodeName = (rcode: number): string =>
  Object.entries(Rcode).find(([, v]) => v === rcode)?.[0] ?? String(rcode);

function ask(zone: ClusterSetZone, name: string, type: keyof typeof RRType, options = OPTIONS): Resolution {
  return resolve(zone, { name, type: RRType[type] }, options);
}

/** One row: the question, the rcode, and the records (compared as sorted sets; CoreDNS's tests sort too). */
interface Row {
  readonly q: string;
  readonly type: keyof typeof RRType;
  readonly rcode: keyof typeof Rcode;
  readonly answer?: readonly string[];
  readonly extra?: readonly string[];
}

function check(zone: ClusterSetZone, row: Row): void {
  const result = ask(zone, row.q, row.type);
  const label = `${row.type} ${row.q}`;
  assert.equal(rcodeName(result.rcode), row.rcode, label);
  assert.deepEqual(result.answers.map(show).sort(), [...(row.answer ?? [])].sort(), `${label}: answer`);
  assert.deepEqual(result.additional.map(show).sort(), [...(row.extra ?? [])].sort(), `${label}: additional`);
  const negative = (row.answer ?? []).length === 0 && row.rcode !== "REFUSED";
  assert.deepEqual(result.authority.map(show), negative ? [SOA] : [], `${label}: authority`);
  assert.equal(result.aa, row.rcode !== "REFUSED", `${label}: AA`);
}

const zone = buildFixtureZone();
const fq = (relative: string): string => `${relative}.${ZONE}`;
const a = (name: string, ip: string): string => `${fq(name)} 5 A ${ip}`;
const aaaa = (name: string, ip: string): string => `${fq(name)} 5 AAAA ${ip}`;
const srv = (name: string, weight: number, port: number, target: string): string =>
  `${fq(name)} 5 SRV 0 ${weight} ${port} ${fq(target)}`;

describe("resolve: response-code matrix of mcs-api.md §4.2", () => {
  const rows: Row[] = [
    { q: fq("svc1.testns.svc"), type: "A", rcode: "NOERROR", answer: [a("svc1.testns.svc", "10.0.0.1")] },
    { q: fq("svc1.testns.svc"), type: "AAAA", rcode: "NOERROR" },
    { q: fq("svc0.testns.svc"), type: "A", rcode: "NXDOMAIN" },
    { q: fq("orphan.absent.svc"), type: "A", rcode: "NXDOMAIN" },
    {
      q: fq("hdls1.testns.svc"),
      type: "A",
      rcode: "NOERROR",
      answer: ["172.0.0.2", "172.0.0.3", "172.0.0.4", "172.0.0.5"].map((ip) => a("hdls1.testns.svc", ip)),
    },
    { q: fq("hdls-notready.testns.svc"), type: "A", rcode: "NXDOMAIN" },
    {
      q: fq("dup-name.clusterid.hdls1.testns.svc"),
      type: "A",
      rcode: "NOERROR",
      answer: [
        a("dup-name.clusterid.hdls1.testns.svc", "172.0.0.4"),
        a("dup-name.clusterid.hdls1.testns.svc", "172.0.0.5"),
      ],
    },
    {
      q: fq("172-0-0-2.clusterid.hdls1.testns.svc"),
      type: "A",
      rcode: "NOERROR",
      answer: [a("172-0-0-2.clusterid.hdls1.testns.svc", "172.0.0.2")],
    },
    { q: fq("clusterid.hdls1.testns.svc"), type: "A", rcode: "NXDOMAIN" },
    { q: fq("dup-name.wrong-cid.hdls1.testns.svc"), type: "A", rcode: "NXDOMAIN" },
    { q: fq("bogusendpoint.clusterid.hdls1.testns.svc"), type: "A", rcode: "NXDOMAIN" },
    { q: fq("bogusendpoint.clusterid.svc0.testns.svc"), type: "A", rcode: "NXDOMAIN" },
    {
      q: fq("_http._tcp.svc1.testns.svc"),
      type: "SRV",
      rcode: "NOERROR",
      answer: [srv("_http._tcp.svc1.testns.svc", 100, 80, "svc1.testns.svc")],
      extra: [a("svc1.testns.svc", "10.0.0.1")],
    },
    { q: fq("_nope._tcp.svc1.testns.svc"), type: "SRV", rcode: "NXDOMAIN" },
    {
      q: fq("svc-two-ports.testns.svc"),
      type: "SRV",
      rcode: "NOERROR",
      answer: [srv("svc-two-ports.testns.svc", 50, 42, "svc-two-ports.testns.svc")],
      extra: [a("svc-two-ports.testns.svc", "10.0.0.4")],
    },
    {
      q: fq("dns-version"),
      type: "TXT",
      rcode: "NOERROR",
      answer: [`${fq("dns-version")} 28800 TXT "1.1.0"`],
    },
    { q: ZONE, type: "A", rcode: "NOERROR" },
    { q: fq("svc"), type: "A", rcode: "NOERROR" },
    { q: fq("testns.svc"), type: "A", rcode: "NOERROR" },
    { q: fq("nsmissing.svc"), type: "A", rcode: "NXDOMAIN" },
    { q: fq("a.b.c.svc1.testns.svc"), type: "A", rcode: "NXDOMAIN" },
    { q: fq("svc1.testns.nope"), type: "A", rcode: "NXDOMAIN" },
    { q: fq("foo"), type: "A", rcode: "NXDOMAIN" },
    { q: "svc1.testns.svc.cluster.local", type: "A", rcode: "REFUSED" },
    { q: "example.com", type: "A", rcode: "REFUSED" },
    { q: "xclusterset.local", type: "A", rcode: "REFUSED" },
  ];
  for (const row of rows) test(`${row.type} ${row.q} → ${row.rcode}`, () => check(zone, row));
});

describe("resolve: CoreDNS handler-test fixtures", () => {
  test("_http._tcp SRV on headless hdls1: 5 records of weight 16, 6 glue records", () => {
    const owner = "_http._tcp.hdls1.testns.svc";
    check(zone, {
      q: fq(owner),
      type: "SRV",
      rcode: "NOERROR",
      answer: ["172-0-0-2", "172-0-0-3", "5678-abcd--1", "5678-abcd--2", "dup-name"].map((host) =>
        srv(owner, 16, 80, `${host}.clusterid.hdls1.testns.svc`),
      ),
      extra: [
        a("172-0-0-2.clusterid.hdls1.testns.svc", "172.0.0.2"),
        a("172-0-0-3.clusterid.hdls1.testns.svc", "172.0.0.3"),
        aaaa("5678-abcd--1.clusterid.hdls1.testns.svc", "5678:abcd::1"),
        aaaa("5678-abcd--2.clusterid.hdls1.testns.svc", "5678:abcd::2"),
        a("dup-name.clusterid.hdls1.testns.svc", "172.0.0.4"),
        a("dup-name.clusterid.hdls1.testns.svc", "172.0.0.5"),
      ],
    });
  });

  test("AAAA on hdls1 returns the two IPv6 endpoints; per-endpoint AAAA works", () => {
    check(zone, {
      q: fq("hdls1.testns.svc"),
      type: "AAAA",
      rcode: "NOERROR",
      answer: [aaaa("hdls1.testns.svc", "5678:abcd::1"), aaaa("hdls1.testns.svc", "5678:abcd::2")],
    });
    check(zone, {
      q: fq("5678-abcd--2.clusterid.hdls1.testns.svc"),
      type: "AAAA",
      rcode: "NOERROR",
      answer: [aaaa("5678-abcd--2.clusterid.hdls1.testns.svc", "5678:abcd::2")],
    });
  });

  test("dual-stack svc-dual-stack: one A, one AAAA, bare SRV weight 50 with A and AAAA glue", () => {
    const name = "svc-dual-stack.testns.svc";
    check(zone, { q: fq(name), type: "A", rcode: "NOERROR", answer: [a(name, "10.0.0.3")] });
    check(zone, { q: fq(name), type: "AAAA", rcode: "NOERROR", answer: [aaaa(name, "10::3")] });
    check(zone, {
      q: fq(name),
      type: "SRV",
      rcode: "NOERROR",
      answer: [srv(name, 50, 80, name)],
      extra: [a(name, "10.0.0.3"), aaaa(name, "10::3")],
    });
  });

  test("IPv6-only ClusterSetIP svc6: AAAA answer, A is NODATA, SRV glue is AAAA", () => {
    check(zone, {
      q: fq("svc6.testns.svc"),
      type: "AAAA",
      rcode: "NOERROR",
      answer: [aaaa("svc6.testns.svc", "1234:abcd::1")],
    });
    check(zone, { q: fq("svc6.testns.svc"), type: "A", rcode: "NOERROR" });
    check(zone, {
      q: fq("_http._tcp.svc6.testns.svc"),
      type: "SRV",
      rcode: "NOERROR",
      answer: [srv("_http._tcp.svc6.testns.svc", 100, 80, "svc6.testns.svc")],
      extra: [aaaa("svc6.testns.svc", "1234:abcd::1")],
    });
  });

  test("headless without ports: A answers, SRV is NODATA, per-endpoint A answers", () => {
    check(zone, {
      q: fq("hdlsprtls.testns.svc"),
      type: "A",
      rcode: "NOERROR",
      answer: [a("hdlsprtls.testns.svc", "172.0.0.20")],
    });
    check(zone, { q: fq("hdlsprtls.testns.svc"), type: "SRV", rcode: "NOERROR" });
    check(zone, {
      q: fq("172-0-0-20.clusterid.hdlsprtls.testns.svc"),
      type: "A",
      rcode: "NOERROR",
      answer: [a("172-0-0-20.clusterid.hdlsprtls.testns.svc", "172.0.0.20")],
    });
  });
});

describe("resolve: grammar and matching", () => {
  const rows: Row[] = [
    { q: fq("svc-no-ports.testns.svc"), type: "A", rcode: "NXDOMAIN" },
    { q: fq("svc-no-ips.testns.svc"), type: "A", rcode: "NOERROR" },
    { q: fq("svc-no-ips.testns.svc"), type: "SRV", rcode: "NOERROR" },
    { q: fq("dup-name.hdls1.testns.svc"), type: "A", rcode: "NXDOMAIN" },
    { q: fq("_http._udp.hdls1.testns.svc"), type: "SRV", rcode: "NXDOMAIN" },
    { q: fq("x.y.svc1.testns.svc"), type: "A", rcode: "NXDOMAIN" },
    { q: fq("pod"), type: "A", rcode: "NOERROR" },
    { q: fq("testns.pod"), type: "A", rcode: "NXDOMAIN" },
    { q: fq("svc1.testns.pod"), type: "A", rcode: "NXDOMAIN" },
    {
      q: fq("_._tcp.svc-two-ports.testns.svc"),
      type: "SRV",
      rcode: "NOERROR",
      answer: [srv("_._tcp.svc-two-ports.testns.svc", 100, 42, "svc-two-ports.testns.svc")],
      extra: [a("svc-two-ports.testns.svc", "10.0.0.4")],
    },
    {
      q: fq("_udp._udp.svc-two-ports.testns.svc"),
      type: "SRV",
      rcode: "NOERROR",
      answer: [srv("_udp._udp.svc-two-ports.testns.svc", 100, 42, "svc-two-ports.testns.svc")],
      extra: [a("svc-two-ports.testns.svc", "10.0.0.4")],
    },
    {
      q: fq("hdls-multi.testns.svc"),
      type: "A",
      rcode: "NOERROR",
      answer: ["10.1.0.1", "10.2.0.1", "10.2.0.2"].map((ip) => a("hdls-multi.testns.svc", ip)),
    },
    {
      q: fq("web-0.c1.hdls-multi.testns.svc"),
      type: "A",
      rcode: "NOERROR",
      answer: [a("web-0.c1.hdls-multi.testns.svc", "10.1.0.1")],
    },
    {
      q: fq("hdls-multi.testns.svc"),
      type: "SRV",
      rcode: "NOERROR",
      answer: ["web-0.c1", "web-0.c2", "10-2-0-2.c2"].map((h) =>
        srv("hdls-multi.testns.svc", 33, 80, `${h}.hdls-multi.testns.svc`),
      ),
      extra: [
        a("web-0.c1.hdls-multi.testns.svc", "10.1.0.1"),
        a("web-0.c2.hdls-multi.testns.svc", "10.2.0.1"),
        a("10-2-0-2.c2.hdls-multi.testns.svc", "10.2.0.2"),
      ],
    },
    {
      q: fq("web-0.c2.hdls-multi.testns.svc"),
      type: "SRV",
      rcode: "NOERROR",
      answer: [srv("web-0.c2.hdls-multi.testns.svc", 100, 80, "web-0.c2.hdls-multi.testns.svc")],
      extra: [a("web-0.c2.hdls-multi.testns.svc", "10.2.0.1")],
    },
  ];
  for (const row of rows) test(`${row.type} ${row.q} → ${row.rcode}`, () => check(zone, row));

  test("matching is case-insensitive and answers echo the question's case", () => {
    const result = ask(zone, "WhOaMi.Demo.svc.ClusterSet.local", "A");
    assert.deepEqual(result.answers.map(show), ["WhOaMi.Demo.svc.ClusterSet.local 5 A 10.96.0.10"]);

    const srvResult = ask(zone, "_HTTP._Tcp.HDLS-multi.TestNS.SVC.ClusterSet.Local.", "SRV");
    assert.equal(srvResult.rcode, Rcode.NOERROR);
    assert.ok(srvResult.answers.every((r) => r.name === "_HTTP._Tcp.HDLS-multi.TestNS.SVC.ClusterSet.Local"));
    // CoreDNS builds SRV targets from the objects' names and the zone as asked.
    assert.ok(
      srvResult.answers
        .map(show)
        .includes(
          "_HTTP._Tcp.HDLS-multi.TestNS.SVC.ClusterSet.Local 5 SRV 0 33 80 web-0.c1.hdls-multi.testns.svc.ClusterSet.Local",
        ),
    );

    const negative = ask(zone, "Nope.Demo.svc.ClusterSet.local", "A");
    assert.equal(negative.rcode, Rcode.NXDOMAIN);
    assert.deepEqual(negative.authority.map(show), [
      `ClusterSet.local 5 SOA ns.dns.ClusterSet.local hostmaster.ClusterSet.local ${FIXTURE_SERIAL} 7200 1800 86400 5`,
    ]);
  });

  test("cluster ids and hostnames match case-insensitively", () => {
    const result = ask(zone, fq("WEB-0.C2.hdls-multi.testns.svc"), "A");
    assert.deepEqual(result.answers.map(show), [`${fq("WEB-0.C2.hdls-multi.testns.svc")} 5 A 10.2.0.1`]);
  });

  test("an endpoint name on a ClusterSetIP import answers from its slices, as CoreDNS does", () => {
    const z = buildFixtureZone();
    z.upsertEndpointSlice(
      endpointSlice("testns", "svc1-1", "svc1", "c9", [{ addresses: ["10.9.0.1"], hostname: "pod-a" }]),
    );
    assert.deepEqual(ask(z, fq("pod-a.c9.svc1.testns.svc"), "A").answers.map(show), [
      a("pod-a.c9.svc1.testns.svc", "10.9.0.1"),
    ]);
    assert.deepEqual(
      ask(z, fq("svc1.testns.svc"), "A").answers.map(show),
      [a("svc1.testns.svc", "10.0.0.1")],
      "VIP unchanged",
    );
  });

  test("generated IPv6 hostnames ending in '-' get a 0 and resolve", () => {
    const z = buildFixtureZone();
    z.upsertServiceImport(serviceImport("testns", "v6", "Headless", [{ name: "http", port: 80 }]));
    z.upsertEndpointSlice(
      endpointSlice("testns", "v6-1", "v6", "c1", [{ addresses: ["fd00::"] }], [], "IPv6"),
    );
    assert.deepEqual(ask(z, fq("fd00--0.c1.v6.testns.svc"), "AAAA").answers.map(show), [
      aaaa("fd00--0.c1.v6.testns.svc", "fd00::"),
    ]);
  });

  test("A answers de-duplicate addresses seen in several slices or endpoints", () => {
    const z = buildFixtureZone();
    z.upsertServiceImport(serviceImport("testns", "dup", "Headless", [{ name: "http", port: 80 }]));
    const ports = [{ name: "http", port: 80, protocol: "TCP" }];
    const twice = [{ addresses: ["10.3.0.1"] }, { addresses: ["10.3.0.1"] }];
    z.upsertEndpointSlice(endpointSlice("testns", "dup-1", "dup", "c1", twice, ports));
    z.upsertEndpointSlice(
      endpointSlice("testns", "dup-2", "dup", "c2", [{ addresses: ["10.3.0.1"] }], ports),
    );
    assert.deepEqual(ask(z, fq("dup.testns.svc"), "A").answers.map(show), [a("dup.testns.svc", "10.3.0.1")]);
    // SRV: 3 candidates → weight 33; two distinct targets (per cluster).
    assert.deepEqual(ask(z, fq("dup.testns.svc"), "SRV").answers.map(show), [
      srv("dup.testns.svc", 33, 80, "10-3-0-1.c1.dup.testns.svc"),
      srv("dup.testns.svc", 33, 80, "10-3-0-1.c2.dup.testns.svc"),
    ]);
  });

  test("escaped labels never match; an escaped dot is not a zone boundary", () => {
    assert.equal(ask(zone, "svc1\\.testns.svc.clusterset.local", "A").rcode, Rcode.NXDOMAIN);
    assert.equal(ask(zone, "svc1.testns.svc.clusterset\\.local", "A").rcode, Rcode.REFUSED);
    assert.equal(ask(zone, "a.clusterset\\.local", "A").rcode, Rcode.REFUSED);
  });
});

describe("resolve: qtypes other than A/AAAA/SRV", () => {
  const rows: Row[] = [
    { q: ZONE, type: "SOA", rcode: "NOERROR", answer: [SOA] },
    { q: fq("svc1.testns.svc"), type: "SOA", rcode: "NOERROR" },
    { q: fq("svc1.testns.svc"), type: "MX", rcode: "NOERROR" },
    { q: fq("svc0.testns.svc"), type: "MX", rcode: "NXDOMAIN" },
    { q: fq("hdls1.testns.svc"), type: "CNAME", rcode: "NOERROR" },
    { q: fq("hdls-notready.testns.svc"), type: "PTR", rcode: "NXDOMAIN" },
    { q: fq("svc1.testns.svc"), type: "ANY", rcode: "NOERROR" },
    { q: fq("svc1.testns.svc"), type: "TXT", rcode: "NOERROR" },
    { q: fq("svc0.testns.svc"), type: "TXT", rcode: "NXDOMAIN" },
    { q: fq("svc-no-ports.testns.svc"), type: "TXT", rcode: "NXDOMAIN" },
    { q: ZONE, type: "NS", rcode: "NOERROR" },
    { q: fq("svc1.testns.svc"), type: "NS", rcode: "NOERROR" },
    { q: fq("dns-version"), type: "A", rcode: "NOERROR" },
  ];
  for (const row of rows) test(`${row.type} ${row.q} → ${row.rcode}`, () => check(zone, row));

  test("zone transfers are refused", () => {
    for (const type of ["AXFR", "IXFR"] as const) {
      const result = ask(zone, ZONE, type);
      assert.equal(result.rcode, Rcode.REFUSED);
      assert.equal(result.aa, false);
    }
  });

  test("Differs from CoreDNS: TXT at the apex and other empty non-terminals is NODATA, not NXDOMAIN", () => {
    for (const q of [ZONE, fq("svc"), fq("testns.svc"), fq("svc-no-ips.testns.svc")]) {
      check(zone, { q, type: "TXT", rcode: "NOERROR" });
    }
  });

  test("SOA below the apex is NODATA whether or not the name exists (as CoreDNS answers)", () => {
    check(zone, { q: fq("svc0.testns.svc"), type: "SOA", rcode: "NOERROR" });
    check(zone, { q: fq("a.b.c.d.e.f"), type: "SOA", rcode: "NOERROR" });
    check(zone, { q: fq("svc1.testns.svc"), type: "SOA", rcode: "NOERROR" });
  });

  test("with nameservers configured, NS at the apex and ns.dns.<zone> are answered", () => {
    const options: ResolveOptions = { zone: ZONE, ttl: 5, nameservers: ["10.96.0.53", "fd00::53"] };
    const ns = ask(zone, "ClusterSet.Local", "NS", options);
    assert.deepEqual(ns.answers.map(show), ["ClusterSet.Local 5 NS ns.dns.ClusterSet.Local"]);
    assert.deepEqual(ns.additional.map(show), [
      "ns.dns.ClusterSet.Local 5 A 10.96.0.53",
      "ns.dns.ClusterSet.Local 5 AAAA fd00::53",
    ]);
    assert.deepEqual(ask(zone, fq("ns.dns"), "A", options).answers.map(show), [a("ns.dns", "10.96.0.53")]);
    assert.equal(ask(zone, fq("ns.dns"), "MX", options).rcode, Rcode.NOERROR);
    const unconfigured = ask(zone, fq("ns.dns"), "A");
    assert.equal(unconfigured.rcode, Rcode.NOERROR, "not configured: the SOA's mname still exists (NODATA)");
    assert.deepEqual(unconfigured.answers, []);
  });
});

describe("resolve: sync state, TTL and serial", () => {
  test("before sync, NXDOMAIN becomes SERVFAIL (with SOA); answers and NODATA are unchanged", () => {
    const z = buildFixtureZone();
    z.setSynced(false);
    const fail = ask(z, fq("svc0.testns.svc"), "A");
    assert.equal(fail.rcode, Rcode.SERVFAIL);
    assert.equal(fail.aa, true);
    assert.deepEqual(fail.authority.map(show), [SOA]);
    assert.equal(ask(z, fq("hdls-notready.testns.svc"), "A").rcode, Rcode.SERVFAIL);
    assert.equal(ask(z, fq("foo"), "A").rcode, Rcode.SERVFAIL);
    assert.deepEqual(ask(z, fq("svc1.testns.svc"), "A").answers.map(show), [
      a("svc1.testns.svc", "10.0.0.1"),
    ]);
    assert.equal(ask(z, fq("svc1.testns.svc"), "AAAA").rcode, Rcode.NOERROR);
    assert.equal(ask(z, "example.com", "A").rcode, Rcode.REFUSED);
  });

  test("TTL applies to answers and the SOA minimum; SOA TTL is capped at 300", () => {
    const options: ResolveOptions = { zone: ZONE, ttl: 600 };
    const positive = ask(zone, fq("_http._tcp.svc1.testns.svc"), "SRV", options);
    assert.deepEqual(
      [...positive.answers, ...positive.additional].map((r) => r.ttl),
      [600, 600],
    );
    const negative = ask(zone, fq("svc0.testns.svc"), "A", options);
    const soa = negative.authority[0];
    assert.ok(soa?.type === RRType.SOA);
    assert.equal(soa.ttl, 300);
    assert.equal(soa.minimum, 600);
    assert.equal(
      ask(zone, fq("dns-version"), "TXT", options).answers[0]?.ttl,
      28800,
      "dns-version keeps 28800",
    );
  });

  test("the SOA serial follows the zone's last change", () => {
    let nowMs = 2_000_000_000;
    const z = new ClusterSetZone({ now: () => nowMs });
    z.setSynced(true);
    const serial = (): number => {
      const soa = ask(z, ZONE, "SOA").answers[0];
      assert.ok(soa?.type === RRType.SOA);
      return soa.serial;
    };
    assert.equal(serial(), 2_000_000);
    nowMs += 42_000;
    z.upsertServiceImport(serviceImport("ns", "s", "ClusterSetIP", [{ port: 80 }], ["10.0.0.1"]));
    assert.equal(serial(), 2_000_042);
  });

  test("options are validated", () => {
    assert.throws(() => validateResolveOptions({ zone: ZONE, ttl: 3601 }), RangeError);
    assert.throws(() => validateResolveOptions({ zone: ZONE, ttl: 1.5 }), RangeError);
    assert.throws(() => validateResolveOptions({ zone: "", ttl: 5 }), TypeError);
    assert.throws(() => validateResolveOptions({ zone: ZONE, ttl: 5, nameservers: ["nope"] }), TypeError);
    validateResolveOptions({ zone: "ClusterSet.Local.", ttl: 0 });
  });

  test("a custom zone is honoured and the trailing dot is optional", () => {
    const options: ResolveOptions = { zone: "mesh.example.", ttl: 5 };
    assert.deepEqual(ask(zone, "svc1.testns.svc.mesh.example.", "A", options).answers.map(show), [
      "svc1.testns.svc.mesh.example 5 A 10.0.0.1",
    ]);
    assert.equal(ask(zone, fq("svc1.testns.svc"), "A", options).rcode, Rcode.REFUSED);
  });
});

describe("resolve: helpers", () => {
  test("srvWeight is CoreDNS's floor(100/n), at least 1", () => {
    assert.deepEqual([1, 2, 3, 5, 6, 7, 100, 101, 1000].map(srvWeight), [100, 50, 33, 20, 16, 14, 1, 1, 1]);
  });

  test("isInZone", () => {
    assert.ok(isInZone("ClusterSet.Local.", ZONE));
    assert.ok(isInZone("a.b.clusterset.local", `${ZONE}.`));
    assert.ok(!isInZone("xclusterset.local", ZONE));
    assert.ok(!isInZone(".", ZONE));
  });
});
