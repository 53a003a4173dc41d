/**
 * The east-west gateway against an HAProxy pair doing the same mTLS hop, in one run:
 *
 *   client ──TCP──▶ A ──mTLS (client cert, verify required)──▶ B ──TCP──▶ backend
 *
 * By default on a local clusterset (`--on clusterset`, bench/gateway-clusterset.ts): a private
 * two-member clusterset from `meridian up`, whose own gateways carry the exported service's traffic
 * from west's node network to a backend pod in east, with the HAProxy pair in the same places and
 * a pod in west as the direct baseline. `--on loopback` runs everything on 127.0.0.1 with gateways
 * the bench starts itself (faster to set up, and it takes `--profile` and `--gateway-node-flags`).
 * Either way every process shares this machine's cores (client tools included), so absolute
 * numbers are lower than on separate machines; the ratios are the point. Both systems and the
 * direct baseline run side by side, and every phase runs in rounds in which each takes its turn
 * (order rotated per round), so drift on a shared machine lands on all of them. Phases: bulk
 * throughput both ways (iperf3, one stream, client to backend and with `-R` backend to client;
 * median of rounds), new connections per second (wrk,
 * `Connection: close`, so every request is a new client connection; median of rounds), added
 * latency (sockperf ping-pong of 64-byte messages on an open connection, every observation of
 * every round pooled before taking p50/p99/p99.9; and connect+echo+close), and memory per 10k
 * idle connections (RSS of both proxies before and after opening idle connections; one system at
 * a time, before any other phase). Before the measured rounds both proxies get `--warmup-rounds`
 * rounds of every phase (default 1), reported apart (`warmupRounds`, `warmupRatios`): a long-running
 * gateway has its hot paths compiled, a fresh one does not, and a user runs the former.
 *
 *   node --import tsx bench/gateway.ts [--on clusterset|loopback] [--seconds 3] [--rounds 5]
 *                                      [--warmup-rounds 1] [--with-node-relay] [--with-mux-relay N]
 *                                      [--multiplex N]
 *                                      [--idle 5000] [--only meridian] [--profile DIR]
 *
 * `--only meridian` (or `haproxy`) measures one system and the direct baseline, for iterating;
 * such a run does not write the results file; with it, `--phases throughput,connections` picks
 * phases (throughput, download, connections, latency, memory). `--haproxy-threads N` sets HAProxy's
 * nbthread (default: one thread per core). `--profile DIR` runs the Meridian gateways (and the
 * relay pairs) with `--cpu-prof` and leaves their profiles in DIR. `--gateway-node-flags "..."` replaces the V8 flags
 * the gateways run with (GATEWAY_NODE_FLAGS; `""` for none), for A/B runs of the runtime's settings.
 *
 * `--with-node-relay` adds a third proxy pair placed where HAProxy is: a bare Node.js TLS relay
 * (bench/gateway-node-relay.ts), the floor under anything written on Node's net and TLS layers; the
 * results then split the gap to HAProxy into the runtime's part and Meridian's (`nodeRelayRatios`).
 * `--with-mux-relay N` adds the same relay multiplexing every client connection as a stream over
 * N long-lived mTLS connections (src/gateway/mux.ts, the gateway's own channels): what multiplexing would cost and save before
 * the gateway chooses it (`muxRelayRatios`, against the plain relay and HAProxy). `--multiplex N`
 * runs Meridian's own gateways with `--multiplex N` (through MERIDIAN_GATEWAY_MULTIPLEX, which the
 * clusterset's gateways inherit): streams as channels over N connections per peer (default: the
 * gateways' own, 2; 0: a connection per stream, as before multiplexing).
 *
 * Ctrl-C (or SIGTERM) stops the run and everything it started, the private clusterset included.
 *
 * Installs haproxy, wrk, iperf3 and sockperf with apt-get when missing. Writes bench/results/gateway.json
 * (clusterset) or bench/results/gateway-loopback.json.
 */
import { execFileSync, spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { DEFAULT_MULTIPLEX_CONNECTIONS } from "../src/gateway/mux.js";
import { GATEWAY_NODE_FLAGS } from "../src/gateway/node-flags.js";
import { createGatewayKeyRequest, createTrustRoot, signGatewayRequest } from "../src/gateway/trust.js";
import { parseGatewayBenchArgs } from "./gateway-options.js";
import { BACKEND_PORTS, stageClusterset, type ClustersetTopology } from "./gateway-clusterset.js";
import {
  connectEchoClose,
  connectionsPerSecond,
  cpuSeconds,
  firstLine,
  freePort,
  idleMemory,
  median,
  percentile,
  roundTrips,
  startProcess,
  throughput,
} from "./gateway-phases.js";

const options = parseGatewayBenchArgs(process.argv.slice(2));
/** Set in the measuring half of a clusterset run (in west's node network): where everything is. */
const TOPOLOGY = options.inside
  ? (JSON.parse(readFileSync(options.inside, "utf8")) as ClustersetTopology)
  : undefined;
const ONLY = options.only;
const PHASES = options.phases;
/** HAProxy's threads per process; its default is one per core (2 here). */
const HAPROXY_THREADS = options.haproxyThreads;
const PROFILE = options.profile ? path.resolve(options.profile) : undefined;
/** Node flags for the Meridian gateways: those every gateway runs with, unless overridden. */
const GATEWAY_FLAGS = options.gatewayNodeFlags ?? GATEWAY_NODE_FLAGS;
// Inherited by every gateway this run starts, on loopback or in the staged clusterset.
if (options.multiplex !== undefined) process.env["MERIDIAN_GATEWAY_MULTIPLEX"] = String(options.multiplex);
else delete process.env["MERIDIAN_GATEWAY_MULTIPLEX"];
const MULTIPLEX = options.multiplex ?? DEFAULT_MULTIPLEX_CONNECTIONS;
const SECONDS = options.seconds;
const ROUNDS = options.rounds;
/**
 * Rounds run before the measured ones and reported apart ("cold"): a gateway that has run for a
 * while has its hot paths compiled by V8, which the first seconds of a fresh process have not.
 */
const WARMUP_ROUNDS = options.warmupRounds;
const IDLE = options.idle;
const CLUSTERSET = "bench.meridian";
const repo = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..");
const dir = mkdtempSync(path.join(os.tmpdir(), "meridian-bench-gw-"));
const children: ChildProcess[] = [];

/**
 * Whether bin/meridian.js will run the gateways from dist/ (built after the last change to src/)
 * or from source through tsx, whose per-function helpers cost several percent of a gateway's CPU.
 */
function meridianRunsFrom(): "dist" | "source (tsx)" {
  const newest = (dir: string): number =>
    readdirSync(dir, { withFileTypes: true }).reduce((m, e) => {
      const f = path.join(dir, e.name);
      return Math.max(m, e.isDirectory() ? newest(f) : statSync(f).mtimeMs);
    }, 0);
  const stamp = path.join(repo, "dist", ".build-stamp");
  return existsSync(stamp) && statSync(stamp).mtimeMs >= newest(path.join(repo, "src"))
    ? "dist"
    : "source (tsx)";
}

function have(tool: string): boolean {
  try {
    execFileSync("sh", ["-c", `command -v ${tool}`], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

function ensureTools(): void {
  const missing = ["haproxy", "wrk", "iperf3", "sockperf"].filter((t) => !have(t));
  if (missing.length === 0) return;
  process.stderr.write(`installing ${missing.join(", ")} with apt-get\n`);
  execFileSync("apt-get", ["install", "-y", "--no-install-recommends", ...missing], {
    stdio: "inherit",
    env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
  });
}

const start = (cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): ChildProcess =>
  startProcess(children, cmd, args, env);

async function waitForPort(port: number, host = "127.0.0.1", timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ port, host }, () => {
        s.destroy();
        resolve(true);
      });
      s.on("error", () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`port ${port} never opened`);
    await sleep(50);
  }
}

// ── PKI: one root, a certificate per side, made with Meridian's own issuer for both systems ──
const root = createTrustRoot(CLUSTERSET);
function issue(clusterId: string): { cert: string; key: string; pem: string } {
  const req = createGatewayKeyRequest(CLUSTERSET, clusterId);
  const certPem = signGatewayRequest(root, req.csrPem, {
    clusterset: CLUSTERSET,
    clusterId,
    lifetimeSeconds: 86_400,
  });
  const files = {
    cert: path.join(dir, `${clusterId}.crt`),
    key: path.join(dir, `${clusterId}.key`),
    pem: path.join(dir, `${clusterId}.pem`),
  };
  writeFileSync(files.cert, certPem);
  writeFileSync(files.key, req.privateKeyPem, { mode: 0o600 });
  writeFileSync(files.pem, certPem + req.privateKeyPem, { mode: 0o600 });
  return files;
}
const caFile = path.join(dir, "ca.crt");
writeFileSync(caFile, root.certPem);
const west = issue("west");
const east = issue("east");

const SERVICE_NAMES = ["iperf", "http", "echo", "sockperf"] as const;
type Services = Record<(typeof SERVICE_NAMES)[number], number>;
const freePorts = async (): Promise<Services> =>
  Object.fromEntries(
    await Promise.all(SERVICE_NAMES.map(async (n) => [n, await freePort()] as const)),
  ) as Services;

interface Entry extends Services {
  pids: number[];
}

async function startMeridian(backends: Services): Promise<Entry> {
  const names = SERVICE_NAMES;
  const peerPort = await freePort();
  const local = await freePorts();
  const bRoutes = {
    peers: [],
    imports: [],
    exports: names.map((n) => ({
      service: `bench/${n}`,
      port: 80,
      endpoints: [{ address: "127.0.0.1", port: backends[n] }],
    })),
  };
  const aRoutes = {
    peers: [{ clusterId: "east", host: "127.0.0.1", port: peerPort }],
    imports: names.map((n) => ({
      service: `bench/${n}`,
      port: 80,
      listenPort: local[n],
      clusters: [{ clusterId: "east", readyEndpoints: 1 }],
    })),
    exports: [],
  };
  writeFileSync(path.join(dir, "b-routes.json"), JSON.stringify(bRoutes));
  writeFileSync(path.join(dir, "a-routes.json"), JSON.stringify(aRoutes));
  const run = (id: string, files: typeof west, routes: string, listenPeer: string): ChildProcess =>
    start(
      process.execPath,
      [...GATEWAY_FLAGS, ...(PROFILE ? ["--cpu-prof", "--cpu-prof-dir", path.join(PROFILE, id)] : []),
        path.join(repo, "bin/meridian.js"), "gateway", "run", "--cluster-id", id, "--clusterset", CLUSTERSET,
        "--listen-peer", listenPeer, "--listen-local", "127.0.0.1", "--routes", routes,
        "--cert", files.cert, "--key", files.key, "--ca", caFile, "--drain-timeout", "2"],
      { MERIDIAN_LOG_LEVEL: "warn" },
    ); // prettier-ignore
  const b = run("east", east, path.join(dir, "b-routes.json"), `127.0.0.1:${peerPort}`);
  await firstLine(b);
  const a = run("west", west, path.join(dir, "a-routes.json"), `127.0.0.1:${await freePort()}`);
  await firstLine(a);
  await sleep(500); // first probe and warm pool
  return { ...local, pids: [a.pid!, b.pid!] };
}

/**
 * Where a comparison pair (HAProxy, or the bare Node relay) runs: A's listen address, B's (which A
 * connects to) and the command prefix that puts B in its network, and the backend's address as B
 * sees it.
 */
interface PairPlacement {
  aHost: string;
  bHost: string;
  bPrefix: string[];
  backendHost: string;
}

async function startHaproxy(backends: Services, at: PairPlacement): Promise<Entry> {
  const names = SERVICE_NAMES;
  const b = await freePorts();
  const a = await freePorts();
  const threads = HAPROXY_THREADS ? `  nbthread ${HAPROXY_THREADS}\n` : "";
  const global = `global\n  maxconn ${IDLE + 2000}\n${threads}\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 1h\n  timeout server 1h\n\n`;
  const bCfg =
    global +
    names
      .map(
        (n) =>
          `frontend fe_${n}\n  bind ${at.bHost}:${b[n]} ssl crt ${east.pem} ca-file ${caFile} verify required\n  default_backend be_${n}\n` +
          `backend be_${n}\n  server s ${at.backendHost}:${backends[n]}\n`,
      )
      .join("\n");
  const aCfg =
    global +
    names
      .map(
        (n) =>
          `frontend fe_${n}\n  bind ${at.aHost}:${a[n]}\n  default_backend be_${n}\n` +
          `backend be_${n}\n  server b ${at.bHost}:${b[n]} ssl crt ${west.pem} ca-file ${caFile} verify required verifyhost east.gateway.${CLUSTERSET}\n`,
      )
      .join("\n");
  writeFileSync(path.join(dir, "haproxy-b.cfg"), bCfg);
  writeFileSync(path.join(dir, "haproxy-a.cfg"), aCfg);
  // `ip netns exec` execs haproxy in place, so the pid is HAProxy's own.
  const [bCmd, ...bArgs] = [...at.bPrefix, "haproxy", "-f", path.join(dir, "haproxy-b.cfg"), "-db"];
  const pb = start(bCmd, bArgs);
  const pa = start("haproxy", ["-f", path.join(dir, "haproxy-a.cfg"), "-db"]);
  // Not the iperf frontends: a probe connection would reach iperf3 and upset it.
  for (const n of ["http", "echo"] as const) await waitForPort(a[n], at.aHost);
  return { ...a, pids: [pa.pid!, pb.pid!] };
}

/**
 * The bare Node.js relay pair (bench/gateway-node-relay.ts), placed where HAProxy is, with the
 * gateways' V8 flags and the same certificates and name check.
 */
async function startNodeRelay(backends: Services, at: PairPlacement, muxConnections = 0): Promise<Entry> {
  const a = await freePorts();
  // Multiplexed, B listens on one port and A names the target in each stream's OPEN.
  const b: Record<string, number> = muxConnections > 0 ? { mux: await freePort() } : await freePorts();
  const kind = muxConnections > 0 ? "mux-relay" : "node-relay";
  const config = (
    role: "a" | "b",
    listenHost: string,
    listen: Record<string, number>,
    targetHost: string,
    target: Record<string, number>,
    files: typeof west,
  ) => {
    const file = path.join(dir, `${kind}-${role}.json`);
    const { cert, key } = files;
    const serverName = `east.gateway.${CLUSTERSET}`;
    writeFileSync(
      file,
      JSON.stringify({
        listenHost,
        listen,
        targetHost,
        target,
        cert,
        key,
        ca: caFile,
        serverName,
        ...(muxConnections > 0 ? { muxConnections } : {}),
      }),
    );
    return file;
  };
  const script = path.join(repo, "bench/gateway-node-relay.ts");
  const node = (role: "a" | "b"): string[] => [
    process.execPath,
    ...GATEWAY_FLAGS,
    ...(PROFILE ? ["--cpu-prof", "--cpu-prof-dir", path.join(PROFILE, `${kind}-${role}`)] : []),
    "--import",
    "tsx",
    script,
  ];
  const [bCmd, ...bArgs] = [
    ...at.bPrefix,
    ...node("b"),
    "b",
    config("b", at.bHost, b, at.backendHost, backends, east),
  ];
  const pb = start(bCmd, bArgs);
  await firstLine(pb);
  const [aCmd, ...aArgs] = node("a");
  const pa = start(aCmd!, [...aArgs, "a", config("a", at.aHost, a, at.bHost, b, west)]);
  await firstLine(pa);
  return { ...a, pids: [pa.pid!, pb.pid!] };
}

interface System {
  name: "direct" | "meridian" | "haproxy" | "nodeRelay" | "muxRelay";
  /** Where clients connect: `host` and the port of each service. */
  host: string;
  entry: Services;
  pids: number[];
}

/** One direction's bulk rounds: their rates, and the proxies' CPU over the bytes moved. */
interface BulkTally {
  mbps: number[];
  cpuSeconds: number;
  megabytes: number;
}

/** What the phases measure of one system, summed or pooled over the rounds. */
interface Tally {
  /** Client to backend. */
  upload: BulkTally;
  /** Backend to client (iperf3 -R): a service's answers, the usual heavy direction. */
  download: BulkTally;
  connRates: number[];
  connCpuSeconds: number;
  connections: number;
  wrkErrors: string[];
  rtt: number[];
  /** Proxy CPU while sockperf ran (its warm-up included, so slightly over the recorded trips'). */
  rttCpuSeconds: number;
  connect: number[];
}

/** The measured rounds' tallies, and the warm-up rounds' apart. */
interface Measured {
  measured: Map<string, Tally>;
  cold: Map<string, Tally>;
}

/**
 * Runs every phase in `WARMUP_ROUNDS` unmeasured rounds and then `ROUNDS` measured ones; in each round every system takes its turn, in an order
 * rotated per round. A machine shared with other work drifts over a run; interleaving spreads the
 * drift over all systems instead of charging it to whichever ran last.
 */
async function measureInterleaved(systems: System[]): Promise<Measured> {
  const tallyEach = (): Map<string, Tally> =>
    new Map<string, Tally>(
      systems.map((s) => [
        s.name,
        {
          upload: { mbps: [], cpuSeconds: 0, megabytes: 0 },
          download: { mbps: [], cpuSeconds: 0, megabytes: 0 },
          connRates: [],
          connCpuSeconds: 0,
          connections: 0,
          wrkErrors: [],
          rtt: [],
          rttCpuSeconds: 0,
          connect: [],
        },
      ]),
    );
  const measured = tallyEach();
  const cold = tallyEach();
  const cpu = (s: System): number => s.pids.reduce((sum, p) => sum + cpuSeconds(p), 0);
  for (let turn = 0; turn < WARMUP_ROUNDS + ROUNDS; turn++) {
    const warmup = turn < WARMUP_ROUNDS;
    const round = turn - WARMUP_ROUNDS;
    const order = systems.map((_, i) => systems[(i + turn) % systems.length]!);
    // The direct path has nothing to warm up.
    for (const s of order.filter((x) => !warmup || x.pids.length > 0)) {
      const t = (warmup ? cold : measured).get(s.name)!;
      process.stderr.write(
        warmup
          ? `warm-up ${turn + 1}/${WARMUP_ROUNDS} ${s.name}: `
          : `round ${round + 1}/${ROUNDS} ${s.name}: `,
      );
      if (PHASES.has("throughput")) await bulkRound(s, t.upload, false);
      if (PHASES.has("download")) await bulkRound(s, t.download, true);
      // The direct path only gives scale, and at its rate (~30k connections a round) it would fill
      // the ephemeral port range with TIME_WAIT sockets for the other systems' turns.
      if (PHASES.has("connections") && (s.pids.length > 0 || round === 0)) {
        const before = cpu(s);
        const conns = connectionsPerSecond(s.host, s.entry.http, SECONDS);
        t.connCpuSeconds += cpu(s) - before;
        t.connections += conns.rate * SECONDS;
        t.connRates.push(conns.rate);
        if (conns.errors !== "none") t.wrkErrors.push(conns.errors);
        process.stderr.write(`${conns.rate.toFixed(0)} conn/s; `);
      }
      if (PHASES.has("latency")) {
        const before = cpu(s);
        const rtt = roundTrips(s.host, s.entry.sockperf, SECONDS);
        t.rttCpuSeconds += cpu(s) - before;
        t.rtt = t.rtt.concat(rtt);
        t.connect = t.connect.concat(await connectEchoClose(s.host, s.entry.echo, SECONDS));
        process.stderr.write(`RTT p99 ${percentile(rtt, 99).toFixed(3)} ms`);
      }
      process.stderr.write("\n");
    }
  }
  return { measured, cold };
}

/** One bulk round of `s` in one direction, tallied into `bulk` and shown on stderr. */
async function bulkRound(s: System, bulk: BulkTally, download: boolean): Promise<void> {
  const before = s.pids.map(cpuSeconds);
  const mbps = await throughput(
    s.host,
    s.entry.iperf,
    SECONDS,
    // On the clusterset the backend pod restarts its own one-off server after every test.
    TOPOLOGY ? undefined : () => start("iperf3", ["-s", "-1", "-p", String(iperfPort)]),
    download,
  );
  // Each process's share too (A first): which side a slow round's extra CPU went to.
  const spentEach = s.pids.map((p, i) => cpuSeconds(p) - before[i]!);
  const spent = spentEach.reduce((sum, x) => sum + x, 0);
  bulk.cpuSeconds += spent;
  bulk.megabytes += mbps * SECONDS;
  bulk.mbps.push(mbps);
  const gigabytes = (mbps * SECONDS) / 1000;
  const each = spentEach.map((x) => (x / gigabytes).toFixed(2)).join(" + ");
  const perGB = s.pids.length > 0 ? ` (${(spent / gigabytes).toFixed(2)} CPU s/GB: ${each})` : "";
  process.stderr.write(`${download ? "down " : ""}${mbps.toFixed(0)} MB/s${perGB}; `);
}

interface IdleMemoryFields {
  idleMemoryMiBPer10k?: number;
  idleMemoryNotMeasured?: string;
  idleConnectionsOpened?: number;
}

function idleMemoryFields(mem: Awaited<ReturnType<typeof idleMemory>> | undefined): IdleMemoryFields {
  if (!mem) return {};
  return {
    ...(mem.perTenThousandMiB !== undefined
      ? { idleMemoryMiBPer10k: Math.round(mem.perTenThousandMiB) }
      : { idleMemoryNotMeasured: "RSS did not grow while the connections were open" }),
    idleConnectionsOpened: mem.opened,
  };
}

/** One proxy's costs against another's: above 1, the first costs more (or moves less). */
function costRatios(x: ReturnType<typeof summarize> & { idleMemoryMiBPer10k?: number }, y: typeof x) {
  const ratio = (a: number | undefined, b: number | undefined): number | null =>
    a !== undefined && b !== undefined && b > 0 ? +(a / b).toFixed(2) : null;
  return {
    throughput: ratio(x.throughputMBps, y.throughputMBps),
    cpuPerGB: ratio(x.proxyCpuSecondsPerGB, y.proxyCpuSecondsPerGB),
    download: ratio(x.downloadMBps, y.downloadMBps),
    cpuPerGBDownload: ratio(x.proxyCpuSecondsPerGBDownload, y.proxyCpuSecondsPerGBDownload),
    connectionsPerSecond: ratio(x.connectionsPerSecond, y.connectionsPerSecond),
    cpuPerConnection: ratio(x.proxyCpuMicrosecondsPerConnection, y.proxyCpuMicrosecondsPerConnection),
    cpuPerRoundTrip: ratio(x.proxyCpuMicrosecondsPerRoundTrip, y.proxyCpuMicrosecondsPerRoundTrip),
    rttP50: ratio(x.rttMs.p50, y.rttMs.p50),
    rttP99: ratio(x.rttMs.p99, y.rttMs.p99),
    idleMemory: ratio(x.idleMemoryMiBPer10k, y.idleMemoryMiBPer10k),
  };
}

type WarmupSummary = Pick<
  ReturnType<typeof summarize>,
  "throughputMBpsPerRound" | "downloadMBpsPerRound" | "connectionsPerSecondPerRound" | "rttMs"
>;

/** Meridian against HAProxy in the warm-up rounds: what a fresh gateway does. */
function coldRatios(m: WarmupSummary, h: WarmupSummary) {
  const ratio = (a: number[], b: number[]): number =>
    a.length > 0 && b.length > 0 ? +(median(a) / median(b)).toFixed(2) : 0;
  return {
    throughput: ratio(m.throughputMBpsPerRound, h.throughputMBpsPerRound),
    download: ratio(m.downloadMBpsPerRound, h.downloadMBpsPerRound),
    connectionsPerSecond: ratio(m.connectionsPerSecondPerRound, h.connectionsPerSecondPerRound),
    rttP99: h.rttMs.p99 > 0 ? +(m.rttMs.p99 / h.rttMs.p99).toFixed(2) : 0,
  };
}

const bulkRate = (b: BulkTally): number => (b.mbps.length > 0 ? Math.round(median(b.mbps)) : 0);
const cpuPerGB = (b: BulkTally): number => +(b.cpuSeconds / (b.megabytes / 1000)).toFixed(2);

function summarize(t: Tally, proxied: boolean) {
  const latency = t.rtt.length > 0;
  return {
    throughputMBps: bulkRate(t.upload),
    throughputMBpsPerRound: t.upload.mbps.map(Math.round),
    ...(proxied && t.upload.megabytes > 0 ? { proxyCpuSecondsPerGB: cpuPerGB(t.upload) } : {}),
    downloadMBps: bulkRate(t.download),
    downloadMBpsPerRound: t.download.mbps.map(Math.round),
    ...(proxied && t.download.megabytes > 0 ? { proxyCpuSecondsPerGBDownload: cpuPerGB(t.download) } : {}),
    connectionsPerSecond: t.connRates.length > 0 ? Math.round(median(t.connRates)) : 0,
    connectionsPerSecondPerRound: t.connRates.map(Math.round),
    ...(proxied && t.connections > 0
      ? { proxyCpuMicrosecondsPerConnection: Math.round((t.connCpuSeconds * 1e6) / t.connections) }
      : {}),
    wrkSocketErrors: t.wrkErrors.length > 0 ? t.wrkErrors.join("; ") : "none",
    rttSamples: t.rtt.length,
    ...(proxied && latency
      ? { proxyCpuMicrosecondsPerRoundTrip: Math.round((t.rttCpuSeconds * 1e6) / t.rtt.length) }
      : {}),
    rttMs: latency
      ? {
          p50: +percentile(t.rtt, 50).toFixed(4),
          p99: +percentile(t.rtt, 99).toFixed(4),
          p999: +percentile(t.rtt, 99.9).toFixed(4),
        }
      : { p50: 0, p99: 0, p999: 0 },
    connectMs: latency
      ? { p50: +percentile(t.connect, 50).toFixed(4), p99: +percentile(t.connect, 99).toFixed(4) }
      : { p50: 0, p99: 0 },
  };
}

/** Backends on loopback: echo and HTTP (bench/gateway-backend.ts), sockperf; iperf3 per run. */
async function startLoopbackBackends(): Promise<Services> {
  const backendProc = start(process.execPath, [
    "--import",
    "tsx",
    path.join(repo, "bench/gateway-backend.ts"),
  ]);
  const ports = JSON.parse(await firstLine(backendProc)) as { echo: number; http: number };
  const sockperfPort = await freePort();
  start("sockperf", ["server", "--tcp", "-i", "127.0.0.1", "-p", String(sockperfPort)]);
  await waitForPort(sockperfPort);
  return { iperf: iperfPort, http: ports.http, echo: ports.echo, sockperf: sockperfPort };
}

/**
 * The host's half of a clusterset run: stage the clusterset (bench/gateway-clusterset.ts), run
 * this script again in west's node network to measure, and tear the clusterset down.
 */
async function runOnClusterset(): Promise<void> {
  ensureTools();
  // Ctrl-C (or a SIGTERM) must not leave a clusterset running: finish staging, stop the measuring
  // half, then tear down.
  let interrupted = false;
  let child: ChildProcess | undefined;
  const interrupt = (signal: NodeJS.Signals): void => {
    if (!interrupted) process.stderr.write(`${signal}: stopping and tearing the clusterset down\n`);
    interrupted = true;
    child?.kill(signal);
  };
  process.on("SIGINT", interrupt).on("SIGTERM", interrupt);
  const staged = await stageClusterset(repo, (line) => process.stderr.write(`${line}\n`));
  try {
    if (interrupted) {
      process.exitCode = 130;
      return;
    }
    child = spawn(
      "ip",
      ["netns", "exec", staged.topology.westNamespace, process.execPath, "--import", "tsx",
        fileURLToPath(import.meta.url), ...process.argv.slice(2), "--inside", staged.topologyFile],
      { stdio: "inherit", cwd: repo },
    ); // prettier-ignore
    const exited = child;
    const code = await new Promise<number>((resolve) => exited.once("exit", (c) => resolve(c ?? 1)));
    if (code !== 0) process.exitCode = code;
  } finally {
    await staged.teardown();
    rmSync(dir, { recursive: true, force: true });
  }
}

const iperfPort = await freePort();
const runsFrom = meridianRunsFrom();
if (runsFrom !== "dist")
  process.stderr.write("warning: dist/ is stale, gateways run from source; npm run build first\n");
if (options.on === "clusterset" && !TOPOLOGY) {
  await runOnClusterset();
  process.exit();
}
// The measuring half stops its own processes (gateways, HAProxy, backends) when interrupted.
let stopping = false;
for (const signal of ["SIGINT", "SIGTERM"] as const)
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    void cleanup().then(() => process.exit(130));
  });
try {
  ensureTools();
  const backends = TOPOLOGY ? BACKEND_PORTS : await startLoopbackBackends();
  const systems: System[] = [
    { name: "direct", host: TOPOLOGY?.westBackend ?? "127.0.0.1", entry: backends, pids: [] },
  ];
  if (ONLY !== "haproxy") {
    if (TOPOLOGY)
      systems.push({
        name: "meridian",
        host: TOPOLOGY.clusterSetIP,
        entry: backends,
        pids: TOPOLOGY.gatewayPids,
      });
    else {
      const entry = await startMeridian(backends);
      systems.push({ name: "meridian", host: "127.0.0.1", entry, pids: entry.pids });
    }
  }
  const at: PairPlacement = TOPOLOGY
    ? {
        aHost: TOPOLOGY.westNodeAddress,
        bHost: TOPOLOGY.eastGatewayAddress,
        bPrefix: ["ip", "netns", "exec", TOPOLOGY.eastNamespace],
        backendHost: TOPOLOGY.eastBackend,
      }
    : { aHost: "127.0.0.1", bHost: "127.0.0.1", bPrefix: [], backendHost: "127.0.0.1" };
  if (ONLY !== "meridian") {
    const entry = await startHaproxy(backends, at);
    systems.push({ name: "haproxy", host: at.aHost, entry, pids: entry.pids });
  }
  if (options.withNodeRelay) {
    const entry = await startNodeRelay(backends, at);
    systems.push({ name: "nodeRelay", host: at.aHost, entry, pids: entry.pids });
  }
  if (options.muxRelayConnections > 0) {
    const entry = await startNodeRelay(backends, at, options.muxRelayConnections);
    systems.push({ name: "muxRelay", host: at.aHost, entry, pids: entry.pids });
  }
  // Memory first, before any load, and one system at a time (idle connections left open would
  // load the others). After the connection phases every process keeps memory their bursts left
  // free (V8's heap, malloc's arenas, HAProxy's pools), and new idle connections filled it without
  // growing RSS: two full runs of one build measured the gateways at 209 and 95 MiB per 10k.
  const memory = new Map<string, Awaited<ReturnType<typeof idleMemory>>>();
  if (PHASES.has("memory"))
    for (const s of systems.filter((x) => x.pids.length > 0)) {
      process.stderr.write(`${s.name}: ${IDLE} idle connections…\n`);
      const mem = await idleMemory(s.host, s.entry.echo, s.pids, IDLE);
      if (mem.perTenThousandMiB === undefined)
        process.stderr.write(
          `${s.name}: RSS did not grow while ${mem.opened} connections were open (memory freed earlier hid their cost): idle memory not measured\n`,
        );
      memory.set(s.name, mem);
    }
  const { measured: tallies, cold } = await measureInterleaved(systems);
  const report = (s: System) => {
    const warmup = summarize(cold.get(s.name)!, true);
    return {
      ...summarize(tallies.get(s.name)!, s.pids.length > 0),
      ...(s.pids.length > 0 && WARMUP_ROUNDS > 0
        ? {
            warmupRounds: {
              throughputMBpsPerRound: warmup.throughputMBpsPerRound,
              downloadMBpsPerRound: warmup.downloadMBpsPerRound,
              connectionsPerSecondPerRound: warmup.connectionsPerSecondPerRound,
              rttMs: warmup.rttMs,
            },
          }
        : {}),
      ...idleMemoryFields(memory.get(s.name)),
    };
  };
  const reports = new Map(systems.map((s) => [s.name, report(s)]));
  const direct = reports.get("direct")!;
  const nodeRelay = reports.get("nodeRelay");
  const muxRelay = reports.get("muxRelay");
  // The clusterset's gateways are its own, stopped with it.
  for (const s of systems.slice(1))
    if (!(TOPOLOGY && s.name === "meridian")) for (const pid of s.pids) process.kill(pid, "SIGTERM");
  await sleep(PROFILE ? 3000 : 500); // profiles are written on exit
  if (ONLY !== undefined) {
    process.stdout.write(`${JSON.stringify(Object.fromEntries(reports), null, 2)}\n`);
    await cleanup();
    process.exit(0);
  }
  const meridian = reports.get("meridian")!;
  const haproxy = reports.get("haproxy")!;

  const againstHaproxy = costRatios(meridian, haproxy);
  const added = (m: typeof meridian, k: "rttMs" | "connectMs", p: "p50" | "p99"): number =>
    +(m[k][p] - direct[k][p]).toFixed(3);
  const result = {
    benchmark: "gateway",
    date: new Date().toISOString(),
    machine: {
      cpus: os.cpus().length,
      memoryGiB: Math.round(os.totalmem() / 2 ** 30),
      node: process.version,
    },
    on: TOPOLOGY ? "local clusterset" : "loopback",
    topology: TOPOLOGY
      ? "client (west's node network) → A (west) → mTLS (TLS 1.3, ECDSA P-256, client certs verified) over the clusterset's shared network → B (east) → backend pod in east; Meridian: the clusterset's own gateways by the service's ClusterSetIP; direct: a backend pod in west"
      : "client → A → mTLS (TLS 1.3, ECDSA P-256, client certs verified) → B → backend; all on 127.0.0.1",
    peer: execFileSync("haproxy", ["-v"], { encoding: "utf8" }).split("\n")[0],
    haproxyThreadsPerProcess: HAPROXY_THREADS ?? os.cpus().length,
    meridianThreadsPerProcess: 1,
    meridianMultiplexConnections: MULTIPLEX,
    meridianRunsFrom: runsFrom,
    meridianNodeFlags: GATEWAY_FLAGS,
    secondsPerPhase: SECONDS,
    rounds: ROUNDS,
    warmupRounds: WARMUP_ROUNDS,
    idleConnections: IDLE,
    direct,
    meridian,
    haproxy,
    ...(nodeRelay
      ? {
          nodeRelay,
          // Where the gap to HAProxy lies: in the runtime (relay vs HAProxy) or in Meridian's code.
          nodeRelayRatios: {
            meridianOverNodeRelay: costRatios(meridian, nodeRelay),
            nodeRelayOverHaproxy: costRatios(nodeRelay, haproxy),
          },
        }
      : {}),
    ...(muxRelay
      ? {
          muxRelay,
          muxRelayConnections: options.muxRelayConnections,
          // What multiplexing costs or saves: the same relay without it, and the peer.
          muxRelayRatios: {
            ...(nodeRelay ? { muxRelayOverNodeRelay: costRatios(muxRelay, nodeRelay) } : {}),
            muxRelayOverHaproxy: costRatios(muxRelay, haproxy),
          },
        }
      : {}),
    addedLatencyMs: {
      meridian: {
        rttP50: added(meridian, "rttMs", "p50"),
        rttP99: added(meridian, "rttMs", "p99"),
        connectP50: added(meridian, "connectMs", "p50"),
        connectP99: added(meridian, "connectMs", "p99"),
      },
      haproxy: {
        rttP50: added(haproxy, "rttMs", "p50"),
        rttP99: added(haproxy, "rttMs", "p99"),
        connectP50: added(haproxy, "connectMs", "p50"),
        connectP99: added(haproxy, "connectMs", "p99"),
      },
    },
    ratios: {
      throughput: +(meridian.throughputMBps / haproxy.throughputMBps).toFixed(2),
      download: againstHaproxy.download,
      connectionsPerSecond: +(meridian.connectionsPerSecond / haproxy.connectionsPerSecond).toFixed(2),
      rttP99: +(meridian.rttMs.p99 / haproxy.rttMs.p99).toFixed(2),
      rttP999: +(meridian.rttMs.p999 / haproxy.rttMs.p999).toFixed(2),
      cpuPerRoundTrip: +(
        (meridian.proxyCpuMicrosecondsPerRoundTrip ?? 0) / (haproxy.proxyCpuMicrosecondsPerRoundTrip ?? 1)
      ).toFixed(2),
      addedRttP99: +(
        (meridian.rttMs.p99 - direct.rttMs.p99) /
        Math.max(0.001, haproxy.rttMs.p99 - direct.rttMs.p99)
      ).toFixed(2),
      connectP99: +(meridian.connectMs.p99 / haproxy.connectMs.p99).toFixed(2),
      idleMemory: againstHaproxy.idleMemory,
    },
    ...(meridian.warmupRounds && haproxy.warmupRounds
      ? { warmupRatios: coldRatios(meridian.warmupRounds, haproxy.warmupRounds) }
      : {}),
  };
  const resultsFile = TOPOLOGY ? "gateway.json" : "gateway-loopback.json";
  writeFileSync(path.join(repo, "bench/results", resultsFile), `${JSON.stringify(result, null, 2)}\n`);
  const row = (label: string, m: string, h: string, r: string, goal: string): string =>
    `| ${label} | ${m} | ${h} | ${r} | ${goal} |`;
  const f = (n: number): string => n.toFixed(3);
  const mib = (n: number | undefined): string => (n === undefined ? "not measured" : `${n} MiB`);
  process.stdout.write(
    [
      `| gateway pair, ${TOPOLOGY ? "local clusterset" : "loopback"}, ${os.cpus().length} cores | Meridian | HAProxy 2.6 | ratio | goal |`,
      "|---|---|---|---|---|",
      row(
        "bulk throughput (iperf3, 1 stream)",
        `${meridian.throughputMBps} MB/s`,
        `${haproxy.throughputMBps} MB/s`,
        `${result.ratios.throughput}×`,
        "≥ 1.0×",
      ),
      row(
        "bulk download (iperf3 -R, backend to client)",
        `${meridian.downloadMBps} MB/s`,
        `${haproxy.downloadMBps} MB/s`,
        result.ratios.download === null ? "not measured" : `${result.ratios.download}×`,
        "",
      ),
      row(
        "proxy CPU per GB, upload / download (both proxies)",
        `${meridian.proxyCpuSecondsPerGB ?? "-"} / ${meridian.proxyCpuSecondsPerGBDownload ?? "-"} s`,
        `${haproxy.proxyCpuSecondsPerGB ?? "-"} / ${haproxy.proxyCpuSecondsPerGBDownload ?? "-"} s`,
        "",
        "",
      ),
      row(
        "new connections/s (wrk, Connection: close)",
        `${meridian.connectionsPerSecond}`,
        `${haproxy.connectionsPerSecond}`,
        `${result.ratios.connectionsPerSecond}×`,
        "≥ 2×",
      ),
      row(
        "64 B round trip p50 / p99 / p99.9 (absolute)",
        `${f(meridian.rttMs.p50)} / ${f(meridian.rttMs.p99)} / ${f(meridian.rttMs.p999)} ms`,
        `${f(haproxy.rttMs.p50)} / ${f(haproxy.rttMs.p99)} / ${f(haproxy.rttMs.p999)} ms`,
        `p99 ${result.ratios.rttP99}×, p99.9 ${result.ratios.rttP999}×`,
        "p99 ≤ 1×",
      ),
      row(
        "proxy CPU per round trip (both proxies)",
        `${meridian.proxyCpuMicrosecondsPerRoundTrip} µs`,
        `${haproxy.proxyCpuMicrosecondsPerRoundTrip} µs`,
        `${result.ratios.cpuPerRoundTrip}×`,
        "",
      ),
      row(
        "added latency, 64 B round trip p50 / p99",
        `${f(result.addedLatencyMs.meridian.rttP50)} / ${f(result.addedLatencyMs.meridian.rttP99)} ms`,
        `${f(result.addedLatencyMs.haproxy.rttP50)} / ${f(result.addedLatencyMs.haproxy.rttP99)} ms`,
        `p99 ${result.ratios.addedRttP99}×`,
        "",
      ),
      row(
        "added latency, connect+echo+close p50 / p99",
        `${f(result.addedLatencyMs.meridian.connectP50)} / ${f(result.addedLatencyMs.meridian.connectP99)} ms`,
        `${f(result.addedLatencyMs.haproxy.connectP50)} / ${f(result.addedLatencyMs.haproxy.connectP99)} ms`,
        `p99 ${result.ratios.connectP99}×`,
        "",
      ),
      row(
        `memory per 10k idle connections (${IDLE} opened, both proxies)`,
        mib(meridian.idleMemoryMiBPer10k),
        mib(haproxy.idleMemoryMiBPer10k),
        result.ratios.idleMemory === null ? "not measured" : `${result.ratios.idleMemory}×`,
        "",
      ),
      ...(nodeRelay
        ? [
            `bare Node relay (no framing, no pool; a handshake per connection): ${nodeRelay.throughputMBps} MB/s (${nodeRelay.proxyCpuSecondsPerGB} CPU s/GB), down ${nodeRelay.downloadMBps} MB/s (${nodeRelay.proxyCpuSecondsPerGBDownload} CPU s/GB), ${nodeRelay.connectionsPerSecond} conn/s, RTT p50/p99 ${f(nodeRelay.rttMs.p50)}/${f(nodeRelay.rttMs.p99)} ms (${nodeRelay.proxyCpuMicrosecondsPerRoundTrip} µs CPU per round trip), ${mib(nodeRelay.idleMemoryMiBPer10k)} per 10k idle`,
          ]
        : []),
      ...(muxRelay
        ? [
            `multiplexed Node relay (every connection a stream over ${options.muxRelayConnections} mTLS connections): ${muxRelay.throughputMBps} MB/s (${muxRelay.proxyCpuSecondsPerGB} CPU s/GB), down ${muxRelay.downloadMBps} MB/s (${muxRelay.proxyCpuSecondsPerGBDownload} CPU s/GB), ${muxRelay.connectionsPerSecond} conn/s, RTT p50/p99 ${f(muxRelay.rttMs.p50)}/${f(muxRelay.rttMs.p99)} ms (${muxRelay.proxyCpuMicrosecondsPerRoundTrip} µs CPU per round trip), ${mib(muxRelay.idleMemoryMiBPer10k)} per 10k idle`,
          ]
        : []),
      `direct (no proxy): ${direct.throughputMBps} MB/s (down ${direct.downloadMBps}), ${direct.connectionsPerSecond} conn/s, RTT p50/p99/p99.9 ${f(direct.rttMs.p50)}/${f(direct.rttMs.p99)}/${f(direct.rttMs.p999)} ms (${direct.rttSamples} round trips)`,
      "",
    ].join("\n"),
  );
} catch (err) {
  // Interrupted: a tool killed mid-run is the expected way out, not an error to report. The
  // signal may still be queued behind the synchronous tool run that just failed.
  await sleep(100);
  if (!stopping) throw err;
  process.exitCode = 130;
} finally {
  await cleanup();
}

async function cleanup(): Promise<void> {
  for (const c of children) if (c.exitCode === null) c.kill("SIGTERM");
  await sleep(300);
  rmSync(dir, { recursive: true, force: true });
}
