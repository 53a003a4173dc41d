/**
 * (Run by test/gateway.test.ts inside a private network namespace.)
 * The gateway as the process users run (`meridian gateway run`), two of them on 127.0.0.1:
 * curl through the pair, a 1 GiB transfer with its checksum, 10k concurrent connections, and a
 * gateway process restart. Loopback only; every phase bounded in time.
 *
 * This machine's hard file limit is 20,000 descriptors per process (not raisable without
 * CAP_SYS_RESOURCE). Multiplexed, a gateway holds one per proxied connection (the client's or the
 * backend's socket), so 10,000 fit; the echo backend runs in a process of its own so that this
 * one holds only the clients' ends. (With a connection per stream it was two, and 9,900.)
 */
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { GATEWAY_NODE_FLAGS } from "../src/gateway/node-flags.js";
import { createTrustRoot } from "../src/gateway/trust.js";
import { startBackend, startHttpBackend } from "../src/gateway/fixtures.js";
import type { Backend } from "../src/gateway/fixtures.js";

const CONCURRENT = Number(process.env["MERIDIAN_GATEWAY_CONCURRENT"] ?? 10_000);
const repo = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..");
const dir = mkdtempSync(path.join(os.tmpdir(), "meridian-gw-it-"));
const procs: ChildProcess[] = [];
const backends: Backend[] = [];
let aPorts: Record<string, number> = {};
let eastPeerPort = 0;
let westPid = 0;
let echoPort = 0;
let echoProcess: ChildProcess | undefined;

/** An echo server in a process of its own (half-close kept); resolves with its port. */
function startEchoProcess(): Promise<number> {
  const code = `const net = require("node:net");
const server = net.createServer({ allowHalfOpen: true }, (c) => { c.on("error", () => {}); c.pipe(c); });
server.listen({ port: 0, host: "127.0.0.1", backlog: 4096 }, () => console.log(server.address().port));`;
  echoProcess = spawn(process.execPath, ["-e", code], { stdio: ["ignore", "pipe", "inherit"] });
  return new Promise((resolve, reject) => {
    echoProcess!.stdout!.once("data", (d: Buffer) => resolve(Number(d.toString().trim())));
    echoProcess!.once("exit", (c) => reject(new Error(`echo backend exited with ${c}`)));
  });
}

function runGateway(
  clusterId: string,
  routes: object,
  peerPort: number,
): Promise<{ proc: ChildProcess; ready: { peerPort: number; listen: Record<string, number> } }> {
  const routesFile = path.join(dir, `${clusterId}-routes.json`);
  writeFileSync(routesFile, JSON.stringify(routes));
  const proc = spawn(
    process.execPath,
    [...GATEWAY_NODE_FLAGS, path.join(repo, "bin/meridian.js"), "gateway", "run", "--cluster-id", clusterId, "--clusterset", "it.meridian",
      "--listen-peer", `127.0.0.1:${peerPort}`, "--listen-local", "127.0.0.1", "--routes", routesFile,
      "--trust-dir", dir, "--drain-timeout", "2"],
    { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, MERIDIAN_LOG_LEVEL: "warn" } },
  ); // prettier-ignore
  procs.push(proc);
  proc.stderr.on("data", (d: Buffer) => process.stderr.write(`[${clusterId}] ${d.toString()}`));
  return new Promise((resolve, reject) => {
    let buf = "";
    proc.stdout.on("data", (d: Buffer) => {
      buf += d.toString();
      if (buf.includes("\n"))
        resolve({
          proc,
          ready: JSON.parse(buf.slice(0, buf.indexOf("\n"))) as {
            peerPort: number;
            listen: Record<string, number>;
          },
        });
    });
    proc.once("exit", (code) => reject(new Error(`gateway ${clusterId} exited with ${code}`)));
  });
}

const eastRoutes = () => ({
  peers: [],
  imports: [],
  exports: [
    { service: "demo/web", port: 80, endpoints: [{ address: "127.0.0.1", port: backends[0]!.port }] },
    { service: "demo/sink", port: 9000, endpoints: [{ address: "127.0.0.1", port: backends[1]!.port }] },
    { service: "demo/echo", port: 7, endpoints: [{ address: "127.0.0.1", port: echoPort }] },
  ],
});

before(async () => {
  const root = createTrustRoot("it.meridian");
  writeFileSync(path.join(dir, "ca.crt"), root.certPem);
  writeFileSync(path.join(dir, "ca.key"), root.privateKeyPem, { mode: 0o600 });
  backends.push(await startHttpBackend("east"), await startBackend("east", "count"));
  echoPort = await startEchoProcess();
  const east = await runGateway("east", eastRoutes(), 0);
  eastPeerPort = east.ready.peerPort;
  const imports = [
    ["demo/web", 80],
    ["demo/sink", 9000],
    ["demo/echo", 7],
  ].map(([service, port]) => ({
    service,
    port,
    listenPort: 0,
    clusters: [{ clusterId: "east", readyEndpoints: 1 }],
  }));
  const westRoutes = {
    peers: [{ clusterId: "east", host: "127.0.0.1", port: eastPeerPort }],
    imports,
    exports: [],
  };
  const west = await runGateway("west", westRoutes, 0);
  aPorts = west.ready.listen;
  westPid = west.proc.pid!;
});

after(async () => {
  for (const p of procs) if (p.exitCode === null) p.kill("SIGTERM");
  await sleep(500);
  for (const p of procs) if (p.exitCode === null) p.kill("SIGKILL");
  for (const b of backends) await b.close();
  echoProcess?.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
});

describe("gateway processes", () => {
  it("serves curl through west's gateway to east's backend", async () => {
    const { stdout } = await promisify(execFile)("curl", [
      "-sS",
      "-m",
      "10",
      `http://127.0.0.1:${aPorts["demo/web:80"]}/hello`,
    ]);
    assert.deepEqual(JSON.parse(stdout), { cluster: "east", path: "/hello" });
  });

  it(
    "moves 1 GiB through both gateways with the checksum intact, then gets the reply after half-close",
    { timeout: 180_000 },
    async () => {
      const total = 1024 * 1024 * 1024;
      const chunk = Buffer.alloc(1024 * 1024);
      for (let i = 0; i < chunk.length; i += 4) chunk.writeUInt32LE((i * 2654435761) >>> 0, i);
      const hash = createHash("sha256");
      const answer = await new Promise<string>((resolve, reject) => {
        const s = net.connect({ port: aPorts["demo/sink:9000"]!, host: "127.0.0.1", allowHalfOpen: true });
        let reply = "";
        s.on("data", (d: Buffer) => (reply += d.toString()));
        s.on("end", () => resolve(reply));
        s.on("error", reject);
        let sent = 0;
        const pump = (): void => {
          while (sent < total) {
            sent += chunk.length;
            hash.update(chunk);
            if (!s.write(chunk)) return void s.once("drain", pump);
          }
          s.end();
        };
        s.once("connect", pump);
      });
      assert.equal(answer, `${total} ${hash.digest("hex")}\n`);
    },
  );

  it(
    `holds ${CONCURRENT} concurrent connections and answers on every one`,
    { timeout: 240_000 },
    async () => {
      const sockets: net.Socket[] = [];
      let answered = 0;
      const started = Date.now();
      try {
        for (let i = 0; i < CONCURRENT; i += 200) {
          await Promise.all(
            Array.from(
              { length: Math.min(200, CONCURRENT - i) },
              (_, j) =>
                new Promise<void>((resolve, reject) => {
                  const s = net.connect({ port: aPorts["demo/echo:7"]!, host: "127.0.0.1" }, () =>
                    s.write(`${i + j}.`),
                  );
                  s.once("data", (d: Buffer) => {
                    assert.equal(d.toString(), `${i + j}.`);
                    answered++;
                    resolve();
                  });
                  s.on("error", reject);
                  sockets.push(s);
                }),
            ),
          );
        }
        assert.equal(answered, CONCURRENT);
        // All still open at once: one more byte on each comes back too.
        let second = 0;
        await Promise.all(
          sockets.map(
            (s) =>
              new Promise<void>((resolve) => {
                s.once("data", () => {
                  second++;
                  resolve();
                });
                s.write("!");
              }),
          ),
        );
        assert.equal(second, CONCURRENT);
        // Streams share the gateways' connections: west holds one descriptor per client, not two.
        const descriptors = readdirSync(`/proc/${westPid}/fd`).length;
        assert.ok(
          descriptors < CONCURRENT + 500,
          `west's gateway holds ${descriptors} descriptors for ${CONCURRENT} connections`,
        );
        process.stderr.write(
          `# ${CONCURRENT} concurrent connections established in ${Date.now() - started} ms\n`,
        );
      } finally {
        for (const s of sockets) s.destroy();
      }
    },
  );

  it("recovers after east's gateway process restarts (measured)", { timeout: 60_000 }, async () => {
    const east = procs[0]!;
    east.kill("SIGTERM");
    await new Promise((r) => east.once("exit", r));
    const stopped = Date.now();
    await runGateway("east", eastRoutes(), eastPeerPort);
    const restarted = Date.now();
    for (;;) {
      const ok = await promisify(execFile)("curl", [
        "-sS",
        "-m",
        "2",
        `http://127.0.0.1:${aPorts["demo/web:80"]}/`,
      ]).then(
        () => true,
        () => false,
      );
      if (ok) break;
      assert.ok(Date.now() - restarted < 10_000, "west did not reach the restarted east within 10 s");
      await sleep(100);
    }
    process.stderr.write(
      `# east restarted ${restarted - stopped} ms after stopping; traffic back ${Date.now() - restarted} ms after restart\n`,
    );
  });
});
