/**
 * Peer comparison of Meridian's `clusterset.local` DNS with CoreDNS (kubernetes plugin,
 * `multicluster` option), both reading the same member API server of a local clusterset:
 *
 * 1. answers: a corpus of objects (ClusterSetIP incl. dual-stack, headless across clusters, named and
 *    unnamed ports, not-ready endpoints, a large headless service) and of queries; every response is
 *    compared record by record (rcode, flags, OPT, the three sections, TTLs; SOA serial and record
 *    order normalised). Differences are printed and written to bench/results/dns.json.
 * 2. performance: dnsperf against each server in turn (same query mix): maximum QPS, then latency
 *    percentiles at a fixed rate.
 *
 *   node --import tsx bench/dns-compare.ts [--state-dir DIR] [--seconds 10] [--no-perf] [--keep]
 *
 * Without --state-dir a private clusterset (hub + 1 member) is started and torn down. Needs root,
 * Go (CoreDNS is built by scripts/build-coredns.sh) and dnsperf (installed with apt-get if missing).
 */
import { execFileSync, spawn, spawnSync } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { ClusterClient, isNotFound } from "../src/kube/client.js";
import { memberKubeconfigPath } from "../src/local/apirelay.js";
import { down, up } from "../src/local/clusterset.js";
import { DNS_PORT } from "../src/local/dns.js";
import { readClusterset, StatePaths } from "../src/local/state.js";
import { mcsEndpointSlice, serviceImport } from "../src/dns/objects.js";
import { exchange, normalize } from "./dns-client.js";
import type { NormalizedResponse, QuerySpec } from "./dns-client.js";

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const NS = "dnscmp";
const ZONE = "clusterset.local";
const COREDNS_PORT = 1053;
const COREDNS_READY_PORT = 8181;
const BIG_ENDPOINTS = 60;

interface Args {
  stateDir?: string;
  inside: boolean;
  coredns?: string;
  seconds: number;
  perf: boolean;
  /** Leave the corpus objects in place afterwards (for digging by hand). */
  keep: boolean;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { inside: false, seconds: 10, perf: true, keep: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--state-dir") args.stateDir = argv[++i];
    else if (a === "--inside") args.inside = true;
    else if (a === "--coredns") args.coredns = argv[++i];
    else if (a === "--seconds") args.seconds = Number(argv[++i]);
    else if (a === "--no-perf") args.perf = false;
    else if (a === "--keep") args.keep = true;
    else
      throw new Error(
        `unknown argument ${a}; usage: dns-compare.ts [--state-dir DIR] [--seconds N] [--no-perf] [--keep]`,
      );
  }
  if (!Number.isInteger(args.seconds) || args.seconds < 1)
    throw new Error(`--seconds must be a whole number ≥ 1`);
  return args;
}

/** Host side: build CoreDNS, install dnsperf, get a clusterset, then run the rest in a member's network. */
async function outside(a: Args): Promise<void> {
  const coredns = execFileSync(path.join(REPO, "scripts", "build-coredns.sh"), {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
  }).trim();
  if (a.perf && spawnSync("sh", ["-c", "command -v dnsperf"]).status !== 0) {
    process.stderr.write("installing dnsperf (apt-get)\n");
    execFileSync(
      "sh",
      ["-c", "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dnsperf"],
      { stdio: "inherit" },
    );
  }
  let stateDir = a.stateDir;
  const privateDir = stateDir === undefined;
  if (privateDir) {
    stateDir = mkdtempSync(path.join(os.tmpdir(), "meridian-dnsbench-"));
    process.stderr.write(`starting a private clusterset in ${stateDir}\n`);
    await up({ stateDir, members: 1 });
  }
  try {
    const record = readClusterset(new StatePaths(stateDir!));
    const member = record?.clusters.find((c) => c.network);
    if (!record || !member?.network) throw new Error(`no local clusterset with a member in ${stateDir}`);
    const child = spawn(
      "ip",
      [
        "netns",
        "exec",
        member.network.nodeNamespace,
        process.execPath,
        "--import",
        "tsx",
        fileURLToPath(import.meta.url),
        "--inside",
        "--state-dir",
        stateDir!,
        "--coredns",
        coredns,
        "--seconds",
        String(a.seconds),
        ...(a.perf ? [] : ["--no-perf"]),
        ...(a.keep ? ["--keep"] : []),
      ],
      { stdio: "inherit", cwd: REPO },
    );
    const code = await new Promise<number>((resolve) => child.once("exit", (c) => resolve(c ?? 1)));
    if (code !== 0) process.exitCode = code;
  } finally {
    if (privateDir) await down(stateDir!, true);
  }
}

interface Server {
  name: "meridian" | "coredns";
  host: string;
  port: number;
}

async function inside(a: Args): Promise<void> {
  const paths = new StatePaths(a.stateDir!);
  const record = readClusterset(paths)!;
  const member = record.clusters.find((c) => c.network)!;
  const host = member.network!.nodeAddress;
  const kubeconfig = memberKubeconfigPath(paths, member.name);
  const client = ClusterClient.fromFile(kubeconfig, member.name);
  const meridian: Server = { name: "meridian", host, port: DNS_PORT };
  const coredns: Server = { name: "coredns", host, port: COREDNS_PORT };

  await createCorpus(client);
  const corednsProcess = startCoreDns(a.coredns!, paths, kubeconfig, member.name, host);
  try {
    await waitFor("CoreDNS ready", async () => {
      const res = await fetch(`http://${host}:${COREDNS_READY_PORT}/ready`).catch(() => undefined);
      return res?.ok === true;
    });
    // Both servers have seen the whole corpus once the big headless service is complete in each.
    for (const server of [meridian, coredns]) {
      await waitFor(`${server.name} to serve the corpus`, async () => {
        const res = normalize(
          await exchange(server, { name: `big.${NS}.svc.${ZONE}`, type: "A", transport: "tcp" }),
        );
        const notReady = normalize(await exchange(server, { name: `hdls.${NS}.svc.${ZONE}`, type: "A" }));
        return res.answer.length === BIG_ENDPOINTS && notReady.answer.length === 4;
      });
    }
    const comparison = await compareAnswers(meridian, coredns);
    const perf = a.perf ? await comparePerformance(meridian, coredns, a.seconds) : undefined;
    const results = {
      date: new Date().toISOString(),
      machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, node: process.version },
      coredns: execFileSync(a.coredns!, ["-version"], { encoding: "utf8" }).split("\n")[0],
      queries: comparison.total,
      identical: comparison.total - new Set(comparison.differences.map((d) => d.query)).size,
      differences: comparison.differences,
      ...(perf ? { performance: perf } : {}),
    };
    mkdirSync(path.join(REPO, "bench", "results"), { recursive: true });
    writeFileSync(path.join(REPO, "bench", "results", "dns.json"), JSON.stringify(results, null, 2) + "\n");
    process.stdout.write(
      `\n${results.identical}/${results.queries} queries answered identically; results in bench/results/dns.json\n`,
    );
  } finally {
    corednsProcess.kill("SIGTERM");
    if (!a.keep) await client.core.deleteNamespace({ name: NS }).catch(() => {});
  }
}

function startCoreDns(
  binary: string,
  paths: StatePaths,
  kubeconfig: string,
  context: string,
  host: string,
): ChildProcess {
  const dir = path.join(paths.dir, "bench-coredns");
  mkdirSync(dir, { recursive: true });
  const corefile = path.join(dir, "Corefile");
  // The zone block mirrors a real deployment's forwarding target: CoreDNS authoritative for
  // clusterset.local only, so out-of-zone names get its no-zone answer (REFUSED).
  writeFileSync(
    corefile,
    [
      `${ZONE}:${COREDNS_PORT} {`,
      `    bind ${host}`,
      `    errors`,
      `    ready ${host}:${COREDNS_READY_PORT}`,
      `    kubernetes ${ZONE} {`,
      `        kubeconfig ${kubeconfig} ${context}`,
      `        multicluster ${ZONE}`,
      `    }`,
      `}`,
      "",
    ].join("\n"),
  );
  const child = spawn(binary, ["-conf", corefile], { stdio: ["ignore", "ignore", "inherit"], cwd: dir });
  child.once("exit", (code, signal) => {
    if (signal !== "SIGTERM") process.stderr.write(`coredns exited (${code ?? signal})\n`);
  });
  return child;
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      if (await check()) return;
    } catch (error) {
      last = error;
    }
    await sleep(200);
  }
  throw new Error(`timed out waiting for ${what}${last instanceof Error ? `: ${last.message}` : ""}`);
}

/** The objects: what the mcs-controller would write into this member. */
async function createCorpus(client: ClusterClient): Promise<void> {
  try {
    await client.core.deleteNamespace({ name: NS });
    await waitFor(`namespace ${NS} to be deleted`, async () => {
      try {
        await client.core.readNamespace({ name: NS });
        return false;
      } catch (error) {
        return isNotFound(error);
      }
    });
  } catch (error) {
    if (!isNotFound(error)) throw error;
  }
  await client.core.createNamespace({ body: { metadata: { name: NS } } });
  const http = { name: "http", protocol: "TCP" as const, port: 80 };
  const objects = [
    serviceImport(NS, "vip", {
      ips: ["10.96.100.1"],
      ports: [
        http,
        { name: "dns", protocol: "UDP", port: 53 },
        { name: "metrics", protocol: "TCP", port: 9090 },
      ],
    }),
    mcsEndpointSlice(NS, "vip", "west", {
      ports: [http],
      endpoints: [{ addresses: ["10.244.1.20"], hostname: "api-0" }, { addresses: ["10.244.1.21"] }],
    }),
    serviceImport(NS, "dual", {
      ips: ["10.96.100.2", "fd00:96::2"],
      ports: [
        { name: "tcp", protocol: "TCP", port: 42 },
        { name: "udp", protocol: "UDP", port: 42 },
      ],
    }),
    serviceImport(NS, "unnamed", { ips: ["10.96.100.4"], ports: [{ protocol: "TCP", port: 8080 }] }),
    serviceImport(NS, "noports", { ips: ["10.96.100.3"], ports: [] }),
    serviceImport(NS, "noips", { ports: [http] }),
    serviceImport(NS, "hdls", {
      type: "Headless",
      ports: [http, { name: "metrics", protocol: "TCP", port: 9090 }],
    }),
    mcsEndpointSlice(NS, "hdls", "west", {
      ports: [http, { name: "metrics", protocol: "TCP", port: 9090 }],
      endpoints: [
        { addresses: ["10.244.1.10"], hostname: "web-0" },
        { addresses: ["10.244.1.11"] },
        { addresses: ["10.244.1.12"], ready: false },
      ],
    }),
    mcsEndpointSlice(NS, "hdls", "east", {
      ports: [http],
      endpoints: [
        { addresses: ["10.244.2.10"], hostname: "dup", ready: true },
        { addresses: ["10.244.2.11"], hostname: "dup" },
      ],
    }),
    mcsEndpointSlice(NS, "hdls", "east", {
      addressType: "IPv6",
      ports: [http],
      endpoints: [{ addresses: ["fd00:244:2::10"] }, { addresses: ["fd00:244:2::"] }],
    }),
    serviceImport(NS, "hdls-unnamed", { type: "Headless", ports: [{ protocol: "TCP", port: 8080 }] }),
    mcsEndpointSlice(NS, "hdls-unnamed", "west", {
      ports: [{ protocol: "TCP", port: 8080 }],
      endpoints: [{ addresses: ["10.244.1.30"] }],
    }),
    serviceImport(NS, "hdls-noports", { type: "Headless", ports: [] }),
    mcsEndpointSlice(NS, "hdls-noports", "west", { endpoints: [{ addresses: ["10.244.1.40"] }] }),
    serviceImport(NS, "hdls-notready", { type: "Headless", ports: [http] }),
    mcsEndpointSlice(NS, "hdls-notready", "west", {
      ports: [http],
      endpoints: [{ addresses: ["10.244.1.50"], ready: false }],
    }),
    serviceImport(NS, "big", { type: "Headless", ports: [http] }),
    mcsEndpointSlice(NS, "big", "north", {
      ports: [http],
      endpoints: Array.from({ length: BIG_ENDPOINTS }, (_, i) => ({ addresses: [`10.244.3.${i + 10}`] })),
    }),
  ];
  for (const object of objects) await client.apply(object as never, "dns-compare");
}

const svc = (name: string): string => `${name}.${NS}.svc.${ZONE}`;

export function queryCorpus(): (QuerySpec & { label?: string })[] {
  const q: (QuerySpec & { label?: string })[] = [];
  const add = (name: string, type: string, extra: Partial<QuerySpec> & { label?: string } = {}): void => {
    q.push({ name, type, ...extra });
  };
  // ClusterSetIP
  for (const t of ["A", "AAAA", "SRV", "TXT", "MX", "CNAME", "PTR", "SOA", "NS", "ANY", "CAA"])
    add(svc("vip"), t);
  add("VIP.DnsCmp.SVC.ClusterSet.LOCAL", "A", { label: "odd case" });
  add("Vip.DNSCMP.svc.clusterset.local", "SRV", { label: "odd case SRV" });
  for (const p of [
    "_http._tcp",
    "_HTTP._TCP",
    "_dns._udp",
    "_dns._tcp",
    "_nope._tcp",
    "_http._udp",
    "_metrics._tcp",
    "_._tcp",
    "_http._",
  ]) {
    add(`${p}.${svc("vip")}`, "SRV");
  }
  add(`_http._tcp.${svc("vip")}`, "A");
  add(`api-0.west.${svc("vip")}`, "A", { label: "endpoint name on a ClusterSetIP import" });
  add(`10-244-1-21.west.${svc("vip")}`, "A");
  for (const t of ["A", "AAAA", "SRV"]) add(svc("dual"), t);
  add(`_tcp._tcp.${svc("dual")}`, "SRV");
  for (const t of ["A", "SRV", "TXT"]) add(svc("unnamed"), t);
  for (const t of ["A", "AAAA", "SRV", "TXT"]) add(svc("noports"), t);
  for (const t of ["A", "AAAA", "SRV", "TXT", "MX"]) add(svc("noips"), t);
  // Headless
  for (const t of ["A", "AAAA", "SRV", "TXT", "MX"]) add(svc("hdls"), t);
  for (const p of ["_http._tcp", "_metrics._tcp", "_http._udp", "_nope._tcp"])
    add(`${p}.${svc("hdls")}`, "SRV");
  add(`_http._tcp.${svc("hdls")}`, "AAAA");
  add(`web-0.west.${svc("hdls")}`, "A");
  add(`WEB-0.West.${svc("hdls")}`, "A", { label: "odd case endpoint" });
  add(`web-0.west.${svc("hdls")}`, "AAAA");
  add(`web-0.west.${svc("hdls")}`, "SRV");
  add(`web-0.west.${svc("hdls")}`, "TXT");
  add(`dup.east.${svc("hdls")}`, "A");
  add(`10-244-1-11.west.${svc("hdls")}`, "A");
  add(`10-244-1-12.west.${svc("hdls")}`, "A", { label: "not-ready endpoint" });
  add(`fd00-244-2--10.east.${svc("hdls")}`, "AAAA");
  add(`fd00-244-2--0.east.${svc("hdls")}`, "AAAA", { label: "IPv6 hostname ending in '-'" });
  add(`web-0.east.${svc("hdls")}`, "A", { label: "wrong cluster" });
  add(`west.${svc("hdls")}`, "A", { label: "cluster id only" });
  add(`x.web-0.west.${svc("hdls")}`, "A", { label: "three extra labels" });
  for (const t of ["A", "SRV"]) add(svc("hdls-unnamed"), t);
  add(`_http._tcp.${svc("hdls-unnamed")}`, "SRV");
  for (const t of ["A", "SRV", "TXT"]) add(svc("hdls-noports"), t);
  for (const t of ["A", "AAAA", "SRV", "TXT"]) add(svc("hdls-notready"), t);
  // Names that exist without records, missing names, the grammar
  for (const name of [
    ZONE,
    `svc.${ZONE}`,
    `pod.${ZONE}`,
    `${NS}.svc.${ZONE}`,
    `dns-version.${ZONE}`,
    `nonexistent.svc.${ZONE}`,
    svc("missing"),
    `vip.nonexistent.svc.${ZONE}`,
    `vip.${NS}.pod.${ZONE}`,
    `10-0-0-1.${NS}.pod.${ZONE}`,
    `foo.${ZONE}`,
    `vip.${NS}.foo.${ZONE}`,
    `ns.dns.${ZONE}`,
  ]) {
    for (const t of ["A", "TXT", "SOA", "NS", "SRV"]) add(name, t);
  }
  add(`DNS-Version.ClusterSet.Local`, "TXT", { label: "odd case" });
  // Outside the zone
  add("example.com", "A");
  add(`kubernetes.default.svc.cluster.local`, "A");
  add(`x${ZONE}`, "A");
  // EDNS, transports, truncation
  add(svc("vip"), "A", { bufsize: null, label: "no EDNS" });
  add(svc("vip"), "A", { bufsize: 4096 });
  add(svc("vip"), "A", { bufsize: 100, label: "EDNS size below 512" });
  add(svc("vip"), "A", { dnssecOk: true, label: "DO bit" });
  add(svc("vip"), "A", { ednsVersion: 1, label: "EDNS version 1" });
  add(svc("vip"), "A", { transport: "tcp" });
  for (const t of ["A", "SRV"]) {
    add(svc("big"), t, { bufsize: null, label: "large answer, no EDNS (512)" });
    add(svc("big"), t, { bufsize: 1232, label: "large answer, 1232" });
    add(svc("big"), t, { transport: "tcp", label: "large answer over TCP" });
  }
  add(svc("hdls"), "SRV", { bufsize: null, label: "SRV + glue without EDNS" });
  // Other messages
  add(ZONE, "AXFR", { transport: "tcp" });
  add(ZONE, "IXFR");
  add(svc("vip"), "A", { qclass: 3, label: "class CH" });
  add(svc("vip"), "A", { qclass: 255, label: "class ANY" });
  add(svc("vip"), "A", { opcode: 4, label: "opcode NOTIFY" });
  add(svc("vip"), "A", { opcode: 2, label: "opcode STATUS" });
  return q;
}

interface Difference {
  query: string;
  field: string;
  meridian: unknown;
  coredns: unknown;
}

function describeQuery(spec: QuerySpec & { label?: string }): string {
  const extras = [
    spec.transport === "tcp" ? "tcp" : undefined,
    spec.bufsize === null ? "noedns" : spec.bufsize !== undefined ? `bufsize=${spec.bufsize}` : undefined,
    spec.dnssecOk ? "do" : undefined,
    spec.ednsVersion ? `ednsVersion=${spec.ednsVersion}` : undefined,
    spec.qclass ? `class=${spec.qclass}` : undefined,
    spec.opcode ? `opcode=${spec.opcode}` : undefined,
  ].filter(Boolean);
  return `${spec.type} ${spec.name}${extras.length ? ` (${extras.join(", ")})` : ""}`;
}

async function ask(server: Server, spec: QuerySpec): Promise<NormalizedResponse | string> {
  try {
    return normalize(await exchange(server, spec, 2000));
  } catch (error) {
    return `no answer: ${(error as Error).message.replace(/ from .*/, "")}`;
  }
}

async function compareAnswers(
  meridian: Server,
  coredns: Server,
): Promise<{ total: number; differences: Difference[] }> {
  const differences: Difference[] = [];
  const corpus = queryCorpus();
  for (const spec of corpus) {
    const m = await ask(meridian, spec);
    let c = await ask(coredns, spec);
    // CoreDNS walks a service's EndpointSlices in no fixed order, so a truncated answer keeps a
    // different prefix from one query to the next: ask again before calling it a difference.
    for (let retry = 0; retry < 10 && JSON.stringify(m) !== JSON.stringify(c); retry++) {
      c = await ask(coredns, spec);
    }
    const query = describeQuery(spec);
    if (typeof m === "string" || typeof c === "string") {
      if (m !== c) differences.push({ query, field: "response", meridian: m, coredns: c });
      continue;
    }
    for (const field of ["rcode", "flags", "opt", "answer", "authority", "additional"] as const) {
      const mv = JSON.stringify(m[field]);
      const cv = JSON.stringify(c[field]);
      if (mv !== cv) differences.push({ query, field, meridian: m[field], coredns: c[field] });
    }
  }
  const byQuery = new Map<string, Difference[]>();
  for (const d of differences) byQuery.set(d.query, [...(byQuery.get(d.query) ?? []), d]);
  for (const [query, diffs] of byQuery) {
    process.stdout.write(`DIFF ${query}\n`);
    for (const d of diffs) {
      process.stdout.write(
        `  ${d.field}:\n    meridian: ${JSON.stringify(d.meridian)}\n    coredns:  ${JSON.stringify(d.coredns)}\n`,
      );
    }
  }
  return { total: corpus.length, differences };
}

interface PerfResult {
  qps: number;
  lost: number;
  latencyMs: { p50: number; p99: number; max: number; rate: number };
}

/** A realistic mix: mostly ClusterSetIP A, some headless, SRV, AAAA and negative answers. */
function perfQueries(): string {
  const lines = [
    ...Array.from({ length: 6 }, () => `${svc("vip")} A`),
    `${svc("dual")} AAAA`,
    `${svc("hdls")} A`,
    `_http._tcp.${svc("hdls")} SRV`,
    `web-0.west.${svc("hdls")} A`,
    `${svc("missing")} A`,
    `${svc("vip")} AAAA`,
  ];
  return lines.join("\n") + "\n";
}

async function comparePerformance(
  meridian: Server,
  coredns: Server,
  seconds: number,
): Promise<Record<string, unknown>> {
  const file = path.join(mkdtempSync(path.join(os.tmpdir(), "dnsperf-")), "queries.txt");
  writeFileSync(file, perfQueries());
  const results: Record<string, PerfResult> = {};
  for (const server of [meridian, coredns]) {
    process.stderr.write(`dnsperf: ${server.name} for ${seconds}s (max QPS)\n`);
    const qps = dnsperfThroughput(server, file, seconds);
    process.stderr.write(`dnsperf: ${server.name} latency at a fixed rate\n`);
    const latency = dnsperfLatency(server, file, Math.min(seconds, 5), 2000);
    results[server.name] = { qps: qps.qps, lost: qps.lost, latencyMs: latency };
    await sleep(1000);
  }
  const m = results["meridian"]!;
  const c = results["coredns"]!;
  const summary = {
    tool: "dnsperf 2 (Debian), UDP, -c 4 -q 200; latency: -Q 2000 -v",
    seconds,
    meridian: m,
    coredns: c,
    qpsRatio: Number((m.qps / c.qps).toFixed(2)),
    p99Ratio: Number((m.latencyMs.p99 / c.latencyMs.p99).toFixed(2)),
  };
  process.stdout.write(
    `\nQPS: meridian ${m.qps.toFixed(0)}, coredns ${c.qps.toFixed(0)} (ratio ${summary.qpsRatio}); ` +
      `p99 at 2000 qps: meridian ${m.latencyMs.p99.toFixed(3)} ms, coredns ${c.latencyMs.p99.toFixed(3)} ms\n`,
  );
  return summary;
}

function dnsperfThroughput(server: Server, file: string, seconds: number): { qps: number; lost: number } {
  const out = execFileSync(
    "dnsperf",
    ["-s", server.host, "-p", String(server.port), "-d", file, "-l", String(seconds), "-c", "4", "-q", "200"],
    { encoding: "utf8" },
  );
  const qps = Number(/Queries per second:\s+([\d.]+)/.exec(out)?.[1]);
  const lost = Number(/Queries lost:\s+(\d+)/.exec(out)?.[1] ?? 0);
  if (!Number.isFinite(qps)) throw new Error(`could not read dnsperf output:\n${out}`);
  return { qps, lost };
}

function dnsperfLatency(
  server: Server,
  file: string,
  seconds: number,
  rate: number,
): PerfResult["latencyMs"] {
  const out = execFileSync(
    "dnsperf",
    [
      "-s",
      server.host,
      "-p",
      String(server.port),
      "-d",
      file,
      "-l",
      String(seconds),
      "-Q",
      String(rate),
      "-v",
    ],
    { encoding: "utf8", maxBuffer: 256 * 1024 * 1024 },
  );
  // Verbose lines: "> NOERROR name type 0.000123" (latency in seconds, last field).
  const latencies = out
    .split("\n")
    .filter((line) => line.startsWith("> "))
    .map((line) => Number(line.trim().split(/\s+/).pop()))
    .filter((v) => Number.isFinite(v))
    .sort((x, y) => x - y);
  if (latencies.length === 0) throw new Error(`dnsperf -v printed no latencies:\n${out.slice(0, 2000)}`);
  const pick = (p: number): number =>
    (latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] ?? 0) * 1000;
  return { p50: pick(0.5), p99: pick(0.99), max: pick(1), rate };
}

// Last, so every declaration above is initialised before the top-level await runs.
const args = parseArgs(process.argv.slice(2));
if (args.inside) await inside(args);
else await outside(args);
