import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import type { Backend } from "../src/gateway/fixtures.js";
import { exchange, startBackend } from "../src/gateway/fixtures.js";
import { createGatewayKeyRequest, createTrustRoot, signGatewayRequest } from "../src/gateway/trust.js";

/** The multiplexed relay pair as the benchmark runs it: two processes, real mTLS on loopback. */
describe("multiplexed relay pair (bench/gateway-node-relay.ts with muxConnections)", () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "mux-relay-"));
  const script = fileURLToPath(new URL("./gateway-node-relay.ts", import.meta.url));
  const processes: ChildProcess[] = [];
  const backends: Backend[] = [];
  const entry: Record<string, number> = {};
  let flood: net.Server;

  const freePort = (): Promise<number> =>
    new Promise((resolve) => {
      const s = net.createServer().listen(0, "127.0.0.1", () => {
        const { port } = s.address() as net.AddressInfo;
        s.close(() => resolve(port));
      });
    });

  const startRelay = (role: "a" | "b", config: object): Promise<void> => {
    const file = path.join(dir, `${role}.json`);
    writeFileSync(file, JSON.stringify(config));
    const child = spawn(process.execPath, ["--import", "tsx", script, role, file], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    processes.push(child);
    return new Promise((resolve, reject) => {
      child.stdout.once("data", () => resolve());
      child.once("exit", (code) => reject(new Error(`relay ${role} exited with ${code}`)));
    });
  };

  before(async () => {
    const root = createTrustRoot("mux.test");
    const files = (clusterId: string): { cert: string; key: string } => {
      const req = createGatewayKeyRequest("mux.test", clusterId);
      const cert = signGatewayRequest(root, req.csrPem, {
        clusterset: "mux.test",
        clusterId,
        lifetimeSeconds: 3600,
      });
      writeFileSync(path.join(dir, `${clusterId}.crt`), cert);
      writeFileSync(path.join(dir, `${clusterId}.key`), req.privateKeyPem);
      return { cert: path.join(dir, `${clusterId}.crt`), key: path.join(dir, `${clusterId}.key`) };
    };
    writeFileSync(path.join(dir, "ca.crt"), root.certPem);
    const count = await startBackend("count", "count");
    const echo = await startBackend("echo", "echo");
    backends.push(count, echo);
    // Sends 32 MiB to whoever connects, however slowly they read.
    flood = net.createServer((s) => {
      s.on("error", () => {});
      s.end(Buffer.alloc(32 * 2 ** 20, 7));
    });
    await new Promise<void>((r) => flood.listen(0, "127.0.0.1", r));
    const floodPort = (flood.address() as net.AddressInfo).port;
    const mux = await freePort();
    for (const name of ["count", "echo", "flood", "missing"]) entry[name] = await freePort();
    const common = { ca: path.join(dir, "ca.crt"), serverName: "east.gateway.mux.test", muxConnections: 2 };
    await startRelay("b", {
      ...common,
      ...files("east"),
      listenHost: "127.0.0.1",
      listen: { mux },
      targetHost: "127.0.0.1",
      target: { count: count.port, echo: echo.port, flood: floodPort },
    });
    await startRelay("a", {
      ...common,
      ...files("west"),
      listenHost: "127.0.0.1",
      listen: entry,
      targetHost: "127.0.0.1",
      target: { mux },
    });
  });

  after(async () => {
    for (const p of processes) p.kill();
    for (const b of backends) await b.close();
    flood.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("carries a large upload and the answer sent after the client's half-close", async () => {
    const upload = Buffer.alloc(6 * 2 ** 20);
    for (let i = 0; i < upload.length; i++) upload[i] = (i * 31) % 251;
    const answer = await exchange(entry.count!, upload);
    assert.equal(answer, `${upload.length} ${createHash("sha256").update(upload).digest("hex")}\n`);
  });

  it("keeps many concurrent streams apart", async () => {
    const payloads = Array.from({ length: 60 }, (_, i) => `stream ${i} `.repeat(100 + i));
    const answers = await Promise.all(payloads.map((p) => exchange(entry.echo!, p)));
    assert.deepEqual(answers, payloads);
  });

  it("closes the client's connection when B has no such target", async () => {
    // The cut reaches the client as a close, or as a reset when A still held its unread bytes.
    const answer = await exchange(entry.missing!, "anyone there?").catch((err: NodeJS.ErrnoException) => {
      if (err.code === "ECONNRESET") return "";
      throw err;
    });
    assert.equal(answer, "");
  });

  it("lets other streams through while one reader stalls", async () => {
    const stalled = net.connect({ port: entry.flood!, host: "127.0.0.1" });
    stalled.pause();
    await new Promise((r) => stalled.once("connect", r));
    await new Promise((r) => setTimeout(r, 300)); // the flood fills its window
    const payload = "still moving ".repeat(5000);
    assert.equal(await exchange(entry.echo!, payload), payload);
    // The stalled stream resumes and gets every byte.
    let received = 0;
    stalled.on("data", (c: Buffer) => (received += c.length));
    stalled.resume();
    await new Promise((r) => stalled.once("end", r));
    assert.equal(received, 32 * 2 ** 20);
    stalled.destroy();
  });
});
