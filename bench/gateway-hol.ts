/**
 * What bulk transfers to a peer cost a request–response stream to the same peer: head-of-line
 * blocking, the price of multiplexing streams over a few connections, which the loopback and
 * clusterset benchmarks (one stream at a time) cannot show.
 *
 *   client ─▶ gateway A ─▶ link (--rate Mbit/s each way, fair-queued) ─▶ gateway B ─▶ backends
 *
 * The link stands in for a WAN between the gateways: it carries each direction at `--rate`, and
 * serves the connections through it in turn (16 KiB each; Linux's default qdisc, fq_codel, is as
 * fair between flows), holding at most 64 KiB per connection before it stops reading from it.
 * What a real link holds in flight, its bandwidth-delay product, is the receiving sockets' buffer
 * (`--bdp` KiB, as the namespace's `tcp_rmem` maximum). For each `--multiplex` setting of gateway
 * A: the round-trip time of 64-byte echoes (one every 5 ms) alone, then beside `--bulk` uploads
 * running flat out to the same peer; and the uploads' rate across the link. Without multiplexing
 * each stream has a connection (and a share of the link) of its own; with it, the echoes share a
 * connection, and its socket's buffers, with uploads.
 *
 * Everything runs in a network namespace of its own (so root), once with the kernel's defaults
 * and once with `net.ipv4.tcp_notsent_lowat` at 16 KiB, which keeps a socket's unsent bytes in
 * the gateway (where its scheduler takes channels in turn) instead of the kernel's send buffer.
 *
 *   node --import tsx bench/gateway-hol.ts [--rate 100] [--bdp 256] [--bulk 4] [--seconds 5]
 *                                          [--modes 0,1,2]
 *
 * Writes bench/results/gateway-hol.json (at the default rate; gateway-hol-<rate>mbit.json at others).
 */
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { makeClusterset, startBackend, startGateway } from "../src/gateway/fixtures.js";
import type { RoutingTable } from "../src/gateway/routes.js";
import { startLink } from "./gateway-link.js";
import { percentile } from "./gateway-phases.js";

const { values } = parseArgs({
  options: {
    rate: { type: "string", default: "100" },
    bulk: { type: "string", default: "4" },
    seconds: { type: "string", default: "5" },
    modes: { type: "string", default: "0,1,2" },
    bdp: { type: "string", default: "256" },
    child: { type: "boolean", default: false },
  },
});
const BULK_STREAMS = Number(values.bulk);
const SECONDS = Number(values.seconds);
const MODES = values.modes.split(",").map(Number);
const MESSAGE = Buffer.alloc(64, 7);

/** Echo round trips, one every 5 ms, until `stop`: each one's time in ms. */
async function echoRoundTrips(port: number, stop: () => boolean): Promise<number[]> {
  const socket = net.connect({ port, host: "127.0.0.1", noDelay: true });
  await new Promise((r, j) => socket.once("connect", r).once("error", j));
  let fail: (err: Error) => void = () => {};
  socket.on("error", (err) => fail(err));
  const times: number[] = [];
  while (!stop()) {
    const started = performance.now();
    await new Promise<void>((resolve, reject) => {
      fail = reject;
      let got = 0;
      const onData = (c: Buffer): void => {
        got += c.length;
        if (got < MESSAGE.length) return;
        socket.off("data", onData);
        resolve();
      };
      socket.on("data", onData);
      socket.write(MESSAGE);
    });
    times.push(performance.now() - started);
    await sleep(5);
  }
  socket.destroy();
  return times;
}

/** Writes as fast as the path takes until `stop`. */
async function upload(port: number, stop: () => boolean): Promise<void> {
  const socket = net.connect({ port, host: "127.0.0.1" });
  await new Promise((r, j) => socket.once("connect", r).once("error", j));
  socket.on("error", () => {});
  const chunk = Buffer.alloc(64 * 1024);
  while (!stop()) {
    if (!socket.write(chunk)) await new Promise((r) => socket.once("drain", r));
  }
  socket.destroy();
}

function percentiles(times: number[]): { p50: number; p99: number; max: number; count: number } {
  const at = (p: number): number => Number(percentile(times, p).toFixed(2));
  return { p50: at(50), p99: at(99), max: at(100), count: times.length };
}

interface ModeResult {
  multiplex: number;
  echoAloneMs: ReturnType<typeof percentiles>;
  echoBesideUploadsMs: ReturnType<typeof percentiles>;
  uploadMBps: number;
}

/** Every `--multiplex` mode, in this process's network namespace; a JSON line each. */
async function measureModes(): Promise<void> {
  const cs = makeClusterset();
  const echo = await startBackend("east", "echo");
  const sink = await startBackend("east", "count");
  const table = (peerPort: number): RoutingTable => ({
    peers: [{ clusterId: "east", host: "127.0.0.1", port: peerPort }],
    imports: ["bench/echo", "bench/sink"].map((service) => ({
      service,
      port: 80,
      listenPort: 0,
      clusters: [{ clusterId: "east", readyEndpoints: 1 }],
    })),
    exports: [],
  });
  const east = await startGateway(cs, "east", {
    peers: [],
    imports: [],
    exports: [
      { service: "bench/echo", port: 80, endpoints: [{ address: "127.0.0.1", port: echo.port }] },
      { service: "bench/sink", port: 80, endpoints: [{ address: "127.0.0.1", port: sink.port }] },
    ],
  });
  for (const multiplex of MODES) {
    const link = await startLink(east.gateway.peerPort, Number(values.rate));
    const west = await startGateway(cs, "west", table(link.port), {
      pool: { multiplex },
      probe: { intervalMs: 1000, timeoutMs: 2000, unhealthyAfter: 3 },
    });
    await sleep(500); // warm pool
    const echoPort = west.port("bench/echo:80");
    const sinkPort = west.port("bench/sink:80");

    let deadline = performance.now() + SECONDS * 1000;
    const alone = percentiles(await echoRoundTrips(echoPort, () => performance.now() > deadline));

    deadline = performance.now() + SECONDS * 1000;
    const uploads = Array.from({ length: BULK_STREAMS }, () =>
      upload(sinkPort, () => performance.now() > deadline),
    );
    // What crossed the link while the uploads ran (the echoes' share is a few KB), not what the
    // gateway took in; counted at the deadline, as an echo stuck behind the uploads ends later.
    const carriedBefore = link.outbound.carried;
    const uploaded = sleep(SECONDS * 1000).then(() => link.outbound.carried - carriedBefore);
    await sleep(200); // the uploads' channels open first, so the echoes share a connection with them
    const beside = percentiles(await echoRoundTrips(echoPort, () => performance.now() > deadline));
    await Promise.all(uploads);

    const result: ModeResult = {
      multiplex,
      echoAloneMs: alone,
      echoBesideUploadsMs: beside,
      uploadMBps: Number(((await uploaded) / SECONDS / 1e6).toFixed(2)),
    };
    process.stdout.write(`${JSON.stringify(result)}\n`);
    await west.gateway.stop(100);
    link.close();
    await sleep(1200);
  }
  await east.gateway.stop(100);
  await echo.close();
  await sink.close();
}

/** The kernel settings each set of modes runs under, in a network namespace of its own. */
const KERNEL_SETTINGS = [
  { name: "kernel defaults", sysctls: {} },
  { name: "tcp_notsent_lowat 16 KiB", sysctls: { "net.ipv4.tcp_notsent_lowat": "16384" } },
];

if (values.child) {
  await measureModes();
} else {
  const namespace = `meridian-hol-${process.pid}`;
  const inNamespace = (command: string[]): string =>
    execFileSync("ip", ["netns", "exec", namespace, ...command], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "inherit"],
    });
  const runs = [];
  execFileSync("ip", ["netns", "add", namespace]);
  try {
    inNamespace(["ip", "link", "set", "lo", "up"]);
    // The receiving ends' buffers stand for what the link holds in flight: its bandwidth-delay product.
    inNamespace(["sysctl", "-qw", `net.ipv4.tcp_rmem=4096 131072 ${Number(values.bdp) * 1024}`]);
    for (const setting of KERNEL_SETTINGS) {
      for (const [key, value] of Object.entries({
        "net.ipv4.tcp_notsent_lowat": "4294967295",
        ...setting.sysctls,
      }))
        inNamespace(["sysctl", "-qw", `${key}=${value}`]);
      process.stdout.write(`${setting.name}:\n`);
      const lines = inNamespace([
        process.execPath,
        "--import",
        "tsx",
        fileURLToPath(import.meta.url),
        ...process.argv.slice(2),
        "--child",
      ])
        .split("\n")
        .filter((line) => line.startsWith("{"));
      process.stdout.write(lines.map((line) => `  ${line}\n`).join(""));
      runs.push({
        kernel: setting.name,
        sysctls: setting.sysctls,
        modes: lines.map((line) => JSON.parse(line) as ModeResult),
      });
    }
  } finally {
    execFileSync("ip", ["netns", "delete", namespace]);
  }
  const name = values.rate === "100" ? "gateway-hol.json" : `gateway-hol-${values.rate}mbit.json`;
  const out = path.join(path.dirname(fileURLToPath(import.meta.url)), "results", name);
  writeFileSync(
    out,
    `${JSON.stringify(
      {
        date: new Date().toISOString(),
        linkMbitPerSecond: Number(values.rate),
        linkBandwidthDelayProductKiB: Number(values.bdp),
        bulkStreams: BULK_STREAMS,
        seconds: SECONDS,
        runs,
      },
      null,
      2,
    )}\n`,
  );
  process.stdout.write(`wrote ${out}\n`);
}
