/**
 * UDP through the east-west gateways, on loopback, against the direct path and against TCP through
 * the same gateways in the same run:
 *
 *   sockperf client ──UDP──▶ A ──mTLS stream (datagrams as records)──▶ B ──UDP──▶ sockperf server
 *   sockperf client ──TCP──▶ A ──mTLS stream──────────────────────────▶ B ──TCP──▶ sockperf server
 *
 * Two real gateway processes (`meridian gateway run`, from dist/ when it is fresh), each with a
 * static routing table, in local-trust mode (each makes its key and has it signed by the trust
 * directory). Phases, in rounds in which each of the four paths takes its turn (order rotated):
 *
 * - round trips: sockperf ping-pong of 64-byte messages (one flow, one message in flight),
 *   every observation pooled before taking p50/p99/p99.9; the gateways' CPU per round trip;
 * - flows (UDP only): `--flows N` sockperf ping-pong clients at once (N flows, so N streams
 *   between the gateways), their summed round trips per second and the gateways' CPU per round
 *   trip. Not for TCP: sockperf's TCP server serves concurrent connections slowly (8 direct
 *   connections made ~19k round trips/s against UDP's ~159k), so it would measure sockperf.
 *
 * There is no peer in this table: HAProxy, the peer of bench/gateway.ts, does not proxy UDP (its
 * only UDP is syslog forwarding), and neither do the other proxies the README compares with. The
 * direct path gives the scale, and TCP through the same gateways what a datagram costs over a
 * byte (the machine drifts by a third between runs, so only a comparison in one run holds).
 *
 *   node --import tsx bench/gateway-udp.ts [--seconds 3] [--rounds 3] [--flows 8] [--profile DIR]
 *
 * `--profile DIR` runs the gateways with `--cpu-prof` and leaves their profiles in DIR.
 *
 * Installs sockperf with apt-get when missing. Writes bench/results/gateway-udp.json.
 */
import { execFileSync } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import { GATEWAY_NODE_FLAGS } from "../src/gateway/node-flags.js";
import {
  cpuSeconds,
  firstLine,
  freePort,
  median,
  percentile,
  roundTrips,
  startProcess,
} from "./gateway-phases.js";
import { wholeNumber } from "./gateway-options.js";

const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "3" },
    rounds: { type: "string", default: "3" },
    flows: { type: "string", default: "8" },
    profile: { type: "string" },
  },
});
const SECONDS = wholeNumber("seconds", values.seconds, 1);
const ROUNDS = wholeNumber("rounds", values.rounds, 1);
const FLOWS = wholeNumber("flows", values.flows, 1);
/** Where the gateways leave their V8 CPU profiles (`--cpu-prof`), one folder each. */
const PROFILE = values.profile ? path.resolve(values.profile) : undefined;
const CLUSTERSET = "bench.udp";
const repo = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..");
const dir = mkdtempSync(path.join(os.tmpdir(), "meridian-bench-udp-"));
const children: ChildProcess[] = [];
const start = (cmd: string, args: string[]): ChildProcess => startProcess(children, cmd, args);

function ensureSockperf(): void {
  try {
    execFileSync("sh", ["-c", "command -v sockperf"], { stdio: "ignore" });
  } catch {
    execFileSync("apt-get", ["install", "-y", "-qq", "sockperf"], { stdio: "inherit" });
  }
}

type Protocol = "udp" | "tcp";

/** The two gateways: B exports bench/echo:9 over UDP and TCP to the sockperf servers, A imports both. */
async function startGateways(
  servers: Record<Protocol, number>,
): Promise<{ ports: Record<Protocol, number>; pids: number[] }> {
  const trustDir = path.join(dir, "trust");
  const meridian = path.join(repo, "bin/meridian.js");
  execFileSync(process.execPath, [
    meridian,
    "gateway",
    "init-trust",
    "--dir",
    trustDir,
    "--clusterset",
    CLUSTERSET,
  ]);
  const peerPort = await freePort();
  const ports = { udp: await freePort(), tcp: await freePort() };
  const protocols = ["udp", "tcp"] as const;
  const routes = {
    east: {
      peers: [],
      imports: [],
      exports: protocols.map((p) => ({
        service: "bench/echo",
        port: 9,
        protocol: p.toUpperCase(),
        endpoints: [{ address: "127.0.0.1", port: servers[p] }],
      })),
    },
    west: {
      peers: [{ clusterId: "east", host: "127.0.0.1", port: peerPort }],
      imports: protocols.map((p) => ({
        service: "bench/echo",
        port: 9,
        protocol: p.toUpperCase(),
        listenPort: ports[p],
        clusters: [{ clusterId: "east", readyEndpoints: 1 }],
      })),
      exports: [],
    },
  };
  const pids: number[] = [];
  for (const [id, listenPeer] of [
    ["east", `127.0.0.1:${peerPort}`],
    ["west", `127.0.0.1:${await freePort()}`],
  ] as const) {
    const file = path.join(dir, `${id}-routes.json`);
    writeFileSync(file, JSON.stringify(routes[id]));
    const gateway = start(process.execPath, [
      ...GATEWAY_NODE_FLAGS,
      ...(PROFILE ? ["--cpu-prof", "--cpu-prof-dir", path.join(PROFILE, id)] : []),
      ...[meridian, "gateway", "run", "--cluster-id", id, "--clusterset", CLUSTERSET],
      ...["--listen-peer", listenPeer, "--listen-local", "127.0.0.1", "--routes", file],
      ...["--trust-dir", trustDir, "--drain-timeout", "1"],
    ]);
    await firstLine(gateway);
    pids.push(gateway.pid!);
  }
  await sleep(500); // the first probe, and the warm pool
  return { ports, pids };
}

interface Tally {
  rtt: number[];
  rttCpuSeconds: number;
  flowRates: number[];
  flowTrips: number;
  flowCpuSeconds: number;
}

/** `n` ping-pong clients at once, each its own flow: their round trips in all, and per second. */
async function concurrentFlows(port: number, n: number): Promise<{ trips: number; perSecond: number }> {
  const runs = Array.from(
    { length: n },
    () =>
      new Promise<{ trips: number; perSecond: number }>((resolve) => {
        const child = start("sockperf", [
          "ping-pong",
          "-i",
          "127.0.0.1",
          "-p",
          String(port),
          "-m",
          "64",
          "-t",
          String(SECONDS),
        ]);
        let out = "";
        child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
        child.once("exit", () => {
          const m = /\[Total Run\] RunTime=([\d.]+) sec;.*ReceivedMessages=(\d+)/.exec(out);
          const trips = Number(m?.[2] ?? 0);
          resolve({ trips, perSecond: m ? trips / Number(m[1]) : 0 });
        });
      }),
  );
  const each = await Promise.all(runs);
  return each.reduce((a, b) => ({ trips: a.trips + b.trips, perSecond: a.perSecond + b.perSecond }));
}

const summary = (t: Tally) => ({
  rttMs: {
    p50: +percentile(t.rtt, 50).toFixed(4),
    p99: +percentile(t.rtt, 99).toFixed(4),
    p999: +percentile(t.rtt, 99.9).toFixed(4),
  },
  roundTrips: t.rtt.length,
  gatewayCpuMicrosPerRoundTrip: t.rtt.length ? +((t.rttCpuSeconds / t.rtt.length) * 1e6).toFixed(1) : 0,
  ...(t.flowRates.length > 0
    ? {
        flows: FLOWS,
        flowRoundTripsPerSecond: +median(t.flowRates).toFixed(0),
        flowRoundsPerSecond: t.flowRates.map((r) => +r.toFixed(0)),
        gatewayCpuMicrosPerFlowRoundTrip: t.flowTrips
          ? +((t.flowCpuSeconds / t.flowTrips) * 1e6).toFixed(1)
          : 0,
      }
    : {}),
});

async function main(): Promise<void> {
  ensureSockperf();
  const servers = { udp: await freePort(), tcp: await freePort() };
  start("sockperf", ["server", "-i", "127.0.0.1", "-p", String(servers.udp)]);
  start("sockperf", ["server", "--tcp", "-i", "127.0.0.1", "-p", String(servers.tcp)]);
  await sleep(300);
  const meridian = await startGateways(servers);
  const systems = (["udp", "tcp"] as const).flatMap((protocol) => [
    { name: `direct ${protocol}`, protocol, port: servers[protocol], pids: [] as number[] },
    { name: `meridian ${protocol}`, protocol, port: meridian.ports[protocol], pids: meridian.pids },
  ]);
  const cpu = (pids: number[]): number => pids.reduce((s, p) => s + cpuSeconds(p), 0);
  const tally = new Map<string, Tally>(
    systems.map((s) => [
      s.name,
      { rtt: [], rttCpuSeconds: 0, flowRates: [], flowTrips: 0, flowCpuSeconds: 0 },
    ]),
  );
  for (let round = 0; round < ROUNDS; round++) {
    for (const s of systems.map((_, i) => systems[(i + round) % systems.length]!)) {
      const t = tally.get(s.name)!;
      let before = cpu(s.pids);
      const rtt = roundTrips("127.0.0.1", s.port, SECONDS, s.protocol);
      t.rttCpuSeconds += cpu(s.pids) - before;
      t.rtt.push(...rtt);
      let flowsNote = "";
      if (s.protocol === "udp") {
        before = cpu(s.pids);
        const flows = await concurrentFlows(s.port, FLOWS);
        t.flowCpuSeconds += cpu(s.pids) - before;
        t.flowRates.push(flows.perSecond);
        t.flowTrips += flows.trips;
        flowsNote = `; ${FLOWS} flows ${flows.perSecond.toFixed(0)} round trips/s`;
      }
      process.stderr.write(
        `round ${round + 1}/${ROUNDS} ${s.name}: RTT p50 ${percentile(rtt, 50).toFixed(3)} p99 ${percentile(rtt, 99).toFixed(3)} ms${flowsNote}\n`,
      );
    }
  }
  const of = (name: string) => summary(tally.get(name)!);
  const [udp, tcp] = [
    { direct: of("direct udp"), meridian: of("meridian udp") },
    { direct: of("direct tcp"), meridian: of("meridian tcp") },
  ];
  const result = {
    when: new Date().toISOString(),
    machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model },
    seconds: SECONDS,
    rounds: ROUNDS,
    peer: "none: HAProxy (the peer of bench/gateway.ts) does not proxy UDP",
    udp,
    tcp,
    udpOverTcp: {
      rttP50: +(udp.meridian.rttMs.p50 / tcp.meridian.rttMs.p50).toFixed(3),
      rttP99: +(udp.meridian.rttMs.p99 / tcp.meridian.rttMs.p99).toFixed(3),
      cpuPerRoundTrip: +(
        udp.meridian.gatewayCpuMicrosPerRoundTrip / tcp.meridian.gatewayCpuMicrosPerRoundTrip
      ).toFixed(3),
    },
  };
  const out = path.join(repo, "bench/results/gateway-udp.json");
  writeFileSync(out, JSON.stringify(result, null, 2) + "\n");
  process.stdout.write(`${JSON.stringify(result, null, 2)}\nwritten to ${out}\n`);
}

/** Stops what the run started: gently first (a gateway drains, and writes its profile if asked). */
async function cleanup(): Promise<void> {
  for (const c of children) c.kill("SIGTERM");
  await Promise.race([
    Promise.all(
      children.map((c) =>
        c.exitCode === null && c.signalCode === null
          ? new Promise((r) => c.once("exit", r))
          : Promise.resolve(),
      ),
    ),
    sleep(3000),
  ]);
  for (const c of children) c.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
}
for (const sig of ["SIGINT", "SIGTERM"] as const)
  process.once(sig, () => void cleanup().finally(() => process.exit(130)));
try {
  await main();
} finally {
  await cleanup();
}
