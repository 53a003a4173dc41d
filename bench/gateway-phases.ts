/**
 * The phases of bench/gateway.ts, each measuring one system through its entry (`host`, `port`):
 * bulk throughput, new connections per second, round trips, connect + echo + close, idle memory.
 * Also the /proc readings they are judged by.
 */
import { execFileSync, spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { existsSync, readFileSync, rmSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

/** A free TCP port on 127.0.0.1 (free when asked; for the processes a bench starts next). */
export async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

/** Starts a process of a bench, kept in `children` (to stop them all); passes on its errors. */
export function startProcess(
  children: ChildProcess[],
  cmd: string,
  args: string[],
  env: NodeJS.ProcessEnv = {},
): ChildProcess {
  const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env } });
  child.stderr.on("data", (d: Buffer) => {
    const text = d.toString();
    if (/error|fatal|alert/i.test(text)) process.stderr.write(`[${path.basename(cmd)}] ${text}`);
  });
  children.push(child);
  return child;
}

/** The first line a process prints (a gateway's ready line, a backend's ports). */
export function firstLine(child: ChildProcess): Promise<string> {
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

/** CPU seconds (user + system) a process has used, from /proc (clock ticks of 1/100 s). */
export function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return Number(m?.[1] ?? 0);
}

/**
 * One stream's bulk rate in MB/s: from the client to the backend, or with `download` from the
 * backend to the client (iperf3's `-R`). `startServer` starts a one-off iperf3 server for this run
 * (a long-lived one can be upset by a half-open probe connection); without it one must be listening.
 */
export async function throughput(
  host: string,
  port: number,
  seconds: number,
  startServer?: () => ChildProcess,
  download = false,
): Promise<number> {
  const server = startServer?.();
  await sleep(400);
  const args = ["-c", host, "-p", String(port), "-t", String(seconds), "-J", ...(download ? ["-R"] : [])];
  const out = execFileSync("iperf3", args, {
    encoding: "utf8",
    timeout: (seconds + 20) * 1000,
  });
  server?.kill();
  const json = JSON.parse(out) as { end: { sum_received: { bits_per_second: number } } };
  return json.end.sum_received.bits_per_second / 8 / 1e6; // MB/s
}

/** New client connections per second: wrk with `Connection: close`, so every request connects. */
export function connectionsPerSecond(
  host: string,
  port: number,
  seconds: number,
): { rate: number; errors: string } {
  const out = execFileSync(
    "wrk",
    ["-t2", "-c32", `-d${seconds}s`, "-H", "Connection: close", `http://${host}:${port}/`],
    {
      encoding: "utf8",
      timeout: (seconds + 20) * 1000,
    },
  );
  const rate = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? 0);
  const errors = /Socket errors:[^\n]*/.exec(out)?.[0] ?? "none";
  return { rate, errors };
}

export const percentile = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};

export const median = (xs: number[]): number => percentile(xs, 50);

/**
 * 64-byte round trips on one open connection, as many as fit in `seconds`, by sockperf (a C
 * ping-pong client, so the client's own pauses do not dominate the tail as a Node client's did),
 * in ms. Every observation is kept so that rounds can be pooled before taking percentiles.
 */
export function roundTrips(
  host: string,
  port: number,
  seconds: number,
  protocol: "tcp" | "udp" = "tcp",
  attempt = 1,
): number[] {
  const log = path.join(os.tmpdir(), `meridian-bench-sockperf-${process.pid}-${port}.csv`);
  let output: string;
  try {
    output = execFileSync(
      "sockperf",
      [
        "ping-pong",
        ...(protocol === "tcp" ? ["--tcp"] : []),
        ...["-i", host, "-p", String(port), "-m", "64", "-t", String(seconds)],
      ].concat(["--full-rtt", "--full-log", log]),
      { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: (seconds + 20) * 1000 },
    );
  } catch (err) {
    output = String((err as { stderr?: string }).stderr ?? err);
  }
  const rtt: number[] = [];
  if (existsSync(log))
    for (const line of readFileSync(log, "utf8").split("\n")) {
      const fields = line.split(",");
      if (fields.length === 4 && /^\d+$/.test(fields[0]!)) rtt.push(Number(fields[3]) / 1000);
    }
  rmSync(log, { force: true });
  if (rtt.length > 0) return rtt;
  if (attempt < 3) return roundTrips(host, port, seconds, protocol, attempt + 1);
  throw new Error(`sockperf measured no round trip through port ${port}: ${output.slice(-400)}`);
}

/** Full connect + 64-byte echo + close, repeated for up to `seconds`, in ms. */
export async function connectEchoClose(host: string, port: number, seconds: number): Promise<number[]> {
  const payload = Buffer.alloc(64, 1);
  const connect: number[] = [];
  const deadline = Date.now() + seconds * 1000;
  for (let i = 0; i < 400 && Date.now() < deadline; i++) {
    const t = process.hrtime.bigint();
    await new Promise<void>((resolve, reject) => {
      const c = net.connect({ port, host, noDelay: true, allowHalfOpen: true }, () => c.end(payload));
      c.on("data", () => {});
      c.on("error", reject);
      c.setTimeout(5000, () => c.destroy(new Error("echo timed out")));
      c.on("end", () => {
        c.destroy();
        resolve();
      });
    });
    if (i >= 20) connect.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  return connect;
}

/**
 * RSS growth scaled to 10k connections; undefined when RSS did not grow. Then a process gave back
 * more memory (garbage from the phases before) than the connections took, so their cost is not
 * measurable from this sample: a number would be a wrong one (a relay once showed -2 MiB).
 */
export function growthPerTenThousandMiB(
  beforeKiB: number,
  afterKiB: number,
  opened: number,
): number | undefined {
  if (opened <= 0 || afterKiB <= beforeKiB) return undefined;
  return ((afterKiB - beforeKiB) / 1024) * (10_000 / opened);
}

/** RSS growth of the proxies while `count` connections sit open, scaled to 10k connections. */
export async function idleMemory(
  host: string,
  port: number,
  pids: number[],
  count: number,
): Promise<{ perTenThousandMiB: number | undefined; opened: number }> {
  const sum = (): number => pids.reduce((s, p) => s + rssKiB(p), 0);
  const before = sum();
  const sockets: net.Socket[] = [];
  let opened = 0;
  for (let i = 0; i < count; i += 250) {
    await Promise.all(
      Array.from(
        { length: Math.min(250, count - i) },
        () =>
          new Promise<void>((resolve) => {
            const s = net.connect({ port, host }, () => s.write("x"));
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
  return { perTenThousandMiB: growthPerTenThousandMiB(before, after, opened), opened };
}
