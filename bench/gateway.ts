/**
 * The east-west gateway against an HAProxy pair doing the same mTLS hop, in one run:
 *
 *   client ──TCP──▶ A ──mTLS (client cert, verify required)──▶ B ──TCP──▶ backend
 *
 * on loopback, every process on this machine's cores (client tools included), so absolute
 * numbers are lower than on separate machines; the ratios are the point. Phases, each bounded:
 * bulk throughput (iperf3, one stream), new connections per second (wrk, `Connection: close`, so
 * every request is a new client connection), added latency (p50/p99 of 64-byte echo round trips
 * on an open connection, and of connect+echo+close, both against a direct connection), and memory
 * per 10k idle connections (RSS of both proxies before and after opening idle connections).
 *
 *   node --import tsx bench/gateway.ts [--seconds 5] [--idle 5000] [--only meridian] [--profile DIR]
 *
 * `--only meridian` (or `haproxy`) measures one system and the direct baseline, for iterating;
 * such a run does not write the results file; with it, `--phases throughput,connections` picks
 * phases (throughput, connections, latency, memory). `--haproxy-threads N` sets HAProxy's
 * nbthread (default: one thread per core). `--profile DIR` runs the Meridian gateways with
 * `--cpu-prof` and leaves their profiles in DIR.
 *
 * Installs haproxy, wrk and iperf3 with apt-get when missing. Writes bench/results/gateway.json.
 */
import { execFileSync, spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import { createGatewayKeyRequest, createTrustRoot, signGatewayRequest } from "../src/gateway/trust.js";

const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "5" },
    idle: { type: "string", default: "5000" },
    only: { type: "string" },
    phases: { type: "string", default: "throughput,connections,latency,memory" },
    profile: { type: "string" },
    "haproxy-threads": { type: "string" },
  },
});
const ONLY = values.only;
const PHASES = new Set(values.phases.split(","));
/** HAProxy's threads per process; its default is one per core (2 here). */
const HAPROXY_THREADS = values["haproxy-threads"];
const PROFILE = values.profile ? path.resolve(values.profile) : undefined;
const SECONDS = Number(values.seconds);
const IDLE = Number(values.idle);
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
  const missing = ["haproxy", "wrk", "iperf3"].filter((t) => !have(t));
  if (missing.length === 0) return;
  process.stderr.write(`installing ${missing.join(", ")} with apt-get\n`);
  execFileSync("apt-get", ["install", "-y", "--no-install-recommends", ...missing], {
    stdio: "inherit",
    env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
  });
}

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

function start(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): ChildProcess {
  const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env } });
  child.stderr.on("data", (d: Buffer) => {
    const text = d.toString();
    if (/error|fatal|alert/i.test(text)) process.stderr.write(`[${path.basename(cmd)}] ${text}`);
  });
  children.push(child);
  return child;
}

function firstLine(child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = "";
    child.stdout!.on("data", (d: Buffer) => {
      buf += d.toString();
      const nl = buf.indexOf("\n");
      if (nl >= 0) resolve(buf.slice(0, nl));
    });
    child.once("exit", (code) => reject(new Error(`${String(child.spawnfile)} exited with ${code}`)));
  });
}

async function waitForPort(port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ port, host: "127.0.0.1" }, () => {
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

/** CPU seconds (user + system) a process has used, from /proc (clock ticks of 1/100 s). */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return Number(m?.[1] ?? 0);
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

interface Entry {
  iperf: number;
  http: number;
  echo: number;
  pids: number[];
}

type Services = { iperf: number; http: number; echo: number };

async function startMeridian(backends: Services): Promise<Entry> {
  const names = ["iperf", "http", "echo"] as const;
  const peerPort = await freePort();
  const local: Services = { iperf: await freePort(), http: await freePort(), echo: await freePort() };
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
      [...(PROFILE ? ["--cpu-prof", "--cpu-prof-dir", path.join(PROFILE, id)] : []),
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

async function startHaproxy(backends: Services): Promise<Entry> {
  const names = ["iperf", "http", "echo"] as const;
  const b: Services = { iperf: await freePort(), http: await freePort(), echo: await freePort() };
  const a: Services = { iperf: await freePort(), http: await freePort(), echo: await freePort() };
  const threads = HAPROXY_THREADS ? `  nbthread ${HAPROXY_THREADS}\n` : "";
  const global = `global\n  maxconn ${IDLE + 2000}\n${threads}\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 1h\n  timeout server 1h\n\n`;
  const bCfg =
    global +
    names
      .map(
        (n) =>
          `frontend fe_${n}\n  bind 127.0.0.1:${b[n]} ssl crt ${east.pem} ca-file ${caFile} verify required\n  default_backend be_${n}\n` +
          `backend be_${n}\n  server s 127.0.0.1:${backends[n]}\n`,
      )
      .join("\n");
  const aCfg =
    global +
    names
      .map(
        (n) =>
          `frontend fe_${n}\n  bind 127.0.0.1:${a[n]}\n  default_backend be_${n}\n` +
          `backend be_${n}\n  server b 127.0.0.1:${b[n]} ssl crt ${west.pem} ca-file ${caFile} verify required verifyhost east.gateway.${CLUSTERSET}\n`,
      )
      .join("\n");
  writeFileSync(path.join(dir, "haproxy-b.cfg"), bCfg);
  writeFileSync(path.join(dir, "haproxy-a.cfg"), aCfg);
  const pb = start("haproxy", ["-f", path.join(dir, "haproxy-b.cfg"), "-db"]);
  const pa = start("haproxy", ["-f", path.join(dir, "haproxy-a.cfg"), "-db"]);
  // Not the iperf frontends: a probe connection would reach iperf3 and upset it.
  for (const n of ["http", "echo"] as const) await waitForPort(a[n]);
  return { ...a, pids: [pa.pid!, pb.pid!] };
}

/** A fresh one-off iperf3 server per run: a half-open probe connection can kill a long-lived one. */
async function throughput(port: number): Promise<number> {
  const server = start("iperf3", ["-s", "-1", "-p", String(iperfPort)]);
  await sleep(400);
  const out = execFileSync("iperf3", ["-c", "127.0.0.1", "-p", String(port), "-t", String(SECONDS), "-J"], {
    encoding: "utf8",
    timeout: (SECONDS + 20) * 1000,
  });
  server.kill();
  const json = JSON.parse(out) as { end: { sum_received: { bits_per_second: number } } };
  return json.end.sum_received.bits_per_second / 8 / 1e6; // MB/s
}

function connectionsPerSecond(port: number): { rate: number; errors: string } {
  const out = execFileSync(
    "wrk",
    ["-t2", "-c32", `-d${SECONDS}s`, "-H", "Connection: close", `http://127.0.0.1:${port}/`],
    {
      encoding: "utf8",
      timeout: (SECONDS + 20) * 1000,
    },
  );
  const rate = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? 0);
  const errors = /Socket errors:[^\n]*/.exec(out)?.[0] ?? "none";
  return { rate, errors };
}

const percentile = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};

/** Round trips of 64 bytes on one open connection, and full connect+echo+close, in ms. */
async function latency(port: number): Promise<{ rtt: number[]; connect: number[] }> {
  const payload = Buffer.alloc(64, 1);
  const rtt: number[] = [];
  // Bounded in time as well as in count, so an overloaded machine cannot stretch the phase.
  let deadline = Date.now() + SECONDS * 1000;
  const s = net.connect({ port, host: "127.0.0.1", noDelay: true });
  await new Promise((r) => s.once("connect", r));
  for (let i = 0; i < 3000 && Date.now() < deadline; i++) {
    const t = process.hrtime.bigint();
    let got = 0;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("echo round trip timed out")), 5000);
      const onData = (c: Buffer): void => {
        got += c.length;
        if (got >= payload.length) {
          s.off("data", onData);
          clearTimeout(timer);
          resolve();
        }
      };
      s.on("data", onData);
      s.write(payload);
    });
    if (i >= 200) rtt.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  s.destroy();
  const connect: number[] = [];
  deadline = Date.now() + SECONDS * 1000;
  for (let i = 0; i < 600 && Date.now() < deadline; i++) {
    const t = process.hrtime.bigint();
    await new Promise<void>((resolve, reject) => {
      const c = net.connect({ port, host: "127.0.0.1", noDelay: true, allowHalfOpen: true }, () =>
        c.end(payload),
      );
      c.on("data", () => {});
      c.on("error", reject);
      c.setTimeout(5000, () => c.destroy(new Error("echo timed out")));
      c.on("end", () => {
        c.destroy();
        resolve();
      });
    });
    if (i >= 100) connect.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  return { rtt, connect };
}

/** RSS growth of the proxies while `IDLE` connections sit open, scaled to 10k connections. */
async function idleMemory(
  port: number,
  pids: number[],
): Promise<{ perTenThousandMiB: number; opened: number }> {
  const sum = (): number => pids.reduce((s, p) => s + rssKiB(p), 0);
  const before = sum();
  const sockets: net.Socket[] = [];
  let opened = 0;
  for (let i = 0; i < IDLE; i += 250) {
    await Promise.all(
      Array.from(
        { length: Math.min(250, IDLE - i) },
        () =>
          new Promise<void>((resolve) => {
            const s = net.connect({ port, host: "127.0.0.1" }, () => s.write("x"));
            s.once("data", () => {
              opened++;
              resolve();
            });
            s.on("error", () => resolve());
            sockets.push(s);
          }),
      ),
    );
  }
  await sleep(1500);
  const after = sum();
  for (const s of sockets) s.destroy();
  await sleep(1500);
  return { perTenThousandMiB: ((after - before) / 1024) * (10_000 / Math.max(1, opened)), opened };
}

async function measure(name: string, entry: Entry | Services, pids: number[]) {
  process.stderr.write(`${name}: throughput…\n`);
  // CPU the proxies spend per unit of work is steadier than rates on a machine shared with others.
  const cpu = (): number => pids.reduce((sum, p) => sum + cpuSeconds(p), 0);
  let cpuBefore = cpu();
  const mbps = PHASES.has("throughput") ? await throughput(entry.iperf) : 0;
  const cpuPerGB = (cpu() - cpuBefore) / ((mbps * SECONDS) / 1000);
  process.stderr.write(
    `${name}: ${mbps.toFixed(0)} MB/s (${cpuPerGB.toFixed(2)} proxy CPU s/GB); connections/s…\n`,
  );
  cpuBefore = cpu();
  const conns = PHASES.has("connections") ? connectionsPerSecond(entry.http) : { rate: 0, errors: "" };
  const cpuPerConn = ((cpu() - cpuBefore) * 1e6) / (conns.rate * SECONDS);
  process.stderr.write(
    `${name}: ${conns.rate.toFixed(0)} conn/s (${cpuPerConn.toFixed(0)} proxy CPU µs/conn, ${conns.errors}); latency…\n`,
  );
  const lat = PHASES.has("latency") ? await latency(entry.echo) : { rtt: [0], connect: [0] };
  const mem = pids.length > 0 && PHASES.has("memory") ? await idleMemory(entry.echo, pids) : undefined;
  return {
    throughputMBps: Math.round(mbps),
    ...(pids.length > 0 ? { proxyCpuSecondsPerGB: +cpuPerGB.toFixed(2) } : {}),
    connectionsPerSecond: Math.round(conns.rate),
    ...(pids.length > 0 ? { proxyCpuMicrosecondsPerConnection: Math.round(cpuPerConn) } : {}),
    wrkSocketErrors: conns.errors,
    rttMs: { p50: percentile(lat.rtt, 50), p99: percentile(lat.rtt, 99) },
    connectMs: { p50: percentile(lat.connect, 50), p99: percentile(lat.connect, 99) },
    ...(mem
      ? { idleMemoryMiBPer10k: Math.round(mem.perTenThousandMiB), idleConnectionsOpened: mem.opened }
      : {}),
  };
}

const iperfPort = await freePort();
const runsFrom = meridianRunsFrom();
if (runsFrom !== "dist")
  process.stderr.write("warning: dist/ is stale, gateways run from source; npm run build first\n");
try {
  ensureTools();
  const backendProc = start(process.execPath, [
    "--import",
    "tsx",
    path.join(repo, "bench/gateway-backend.ts"),
  ]);
  const ports = JSON.parse(await firstLine(backendProc)) as { echo: number; http: number };
  const backends: Services = { iperf: iperfPort, http: ports.http, echo: ports.echo };

  if (ONLY === undefined && PHASES.size < 4) throw new Error("--phases goes with --only");
  const direct = await measure("direct", backends, []);
  if (ONLY !== undefined) {
    if (ONLY !== "meridian" && ONLY !== "haproxy") throw new Error("--only takes meridian or haproxy");
    const entry = ONLY === "meridian" ? await startMeridian(backends) : await startHaproxy(backends);
    const m = await measure(ONLY, entry, entry.pids);
    for (const pid of entry.pids) process.kill(pid, "SIGTERM");
    await sleep(PROFILE ? 3000 : 500); // profiles are written on exit
    process.stdout.write(`${JSON.stringify({ direct, [ONLY]: m }, null, 2)}\n`);
    await cleanup();
    process.exit(0);
  }
  const meridianEntry = await startMeridian(backends);
  const meridian = await measure("meridian", meridianEntry, meridianEntry.pids);
  for (const pid of meridianEntry.pids) process.kill(pid, "SIGTERM");
  await sleep(PROFILE ? 3000 : 1000);
  const haproxyEntry = await startHaproxy(backends);
  const haproxy = await measure("haproxy", haproxyEntry, haproxyEntry.pids);

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
    topology:
      "client → A → mTLS (TLS 1.3, ECDSA P-256, client certs verified) → B → backend; all on 127.0.0.1",
    peer: execFileSync("haproxy", ["-v"], { encoding: "utf8" }).split("\n")[0],
    haproxyThreadsPerProcess: HAPROXY_THREADS ? Number(HAPROXY_THREADS) : os.cpus().length,
    meridianThreadsPerProcess: 1,
    meridianRunsFrom: runsFrom,
    secondsPerPhase: SECONDS,
    idleConnections: IDLE,
    direct,
    meridian,
    haproxy,
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
      connectionsPerSecond: +(meridian.connectionsPerSecond / haproxy.connectionsPerSecond).toFixed(2),
      rttP99: +(meridian.rttMs.p99 / haproxy.rttMs.p99).toFixed(2),
      connectP99: +(meridian.connectMs.p99 / haproxy.connectMs.p99).toFixed(2),
      idleMemory: +((meridian.idleMemoryMiBPer10k ?? 0) / (haproxy.idleMemoryMiBPer10k ?? 1)).toFixed(2),
    },
  };
  writeFileSync(path.join(repo, "bench/results/gateway.json"), `${JSON.stringify(result, null, 2)}\n`);
  const row = (label: string, m: string, h: string, r: string, goal: string): string =>
    `| ${label} | ${m} | ${h} | ${r} | ${goal} |`;
  const f = (n: number): string => n.toFixed(3);
  process.stdout.write(
    [
      "| gateway pair, loopback, 2 cores | Meridian | HAProxy 2.6 | ratio | goal |",
      "|---|---|---|---|---|",
      row(
        "bulk throughput (iperf3, 1 stream)",
        `${meridian.throughputMBps} MB/s`,
        `${haproxy.throughputMBps} MB/s`,
        `${result.ratios.throughput}×`,
        "≥ 1.0×",
      ),
      row(
        "new connections/s (wrk, Connection: close)",
        `${meridian.connectionsPerSecond}`,
        `${haproxy.connectionsPerSecond}`,
        `${result.ratios.connectionsPerSecond}×`,
        "≥ 2×",
      ),
      row(
        "added latency, 64 B round trip p50 / p99",
        `${f(result.addedLatencyMs.meridian.rttP50)} / ${f(result.addedLatencyMs.meridian.rttP99)} ms`,
        `${f(result.addedLatencyMs.haproxy.rttP50)} / ${f(result.addedLatencyMs.haproxy.rttP99)} ms`,
        `p99 ${result.ratios.rttP99}×`,
        "p99 ≤ 1×",
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
        `${meridian.idleMemoryMiBPer10k} MiB`,
        `${haproxy.idleMemoryMiBPer10k} MiB`,
        `${result.ratios.idleMemory}×`,
        "",
      ),
      `direct (no proxy): ${direct.throughputMBps} MB/s, ${direct.connectionsPerSecond} conn/s, RTT p50/p99 ${f(direct.rttMs.p50)}/${f(direct.rttMs.p99)} ms`,
      "",
    ].join("\n"),
  );
} finally {
  await cleanup();
}

async function cleanup(): Promise<void> {
  for (const c of children) if (c.exitCode === null) c.kill("SIGTERM");
  await sleep(300);
  rmSync(dir, { recursive: true, force: true });
}
