/**
 * Test and benchmark fixtures: a clusterset trust root with per-cluster identities, backends that
 * behave in known ways, and gateways wired to a static routing table. Loopback only.
 */
import { createHash } from "node:crypto";
import dgram from "node:dgram";
import http from "node:http";
import net from "node:net";
import { createLogger } from "../observability/logger.js";
import { Gateway } from "./gateway.js";
import type { GatewayOptions } from "./gateway.js";
import { RenewingIdentity } from "./identity.js";
import type { RoutingTable } from "./routes.js";
import { StaticRoutingSource } from "./routes.js";
import type { TrustBundle, TrustRoot } from "./trust.js";
import { createTrustRoot, LocalSigner } from "./trust.js";

export const CLUSTERSET = "test.meridian";

export interface Clusterset {
  root: TrustRoot;
  bundle: TrustBundle;
  /** Short lifetimes are backdated by only a second, so renewal happens at 2/3 of the lifetime. */
  identity(clusterId: string, lifetimeSeconds?: number): RenewingIdentity;
}

export function makeClusterset(name = CLUSTERSET): Clusterset {
  const root = createTrustRoot(name);
  const bundle: TrustBundle = { clusterset: name, caPems: [root.certPem] };
  return {
    root,
    bundle,
    identity: (clusterId, lifetimeSeconds = 3600) =>
      new RenewingIdentity({
        clusterset: name,
        clusterId,
        signer: new LocalSigner(root, name, lifetimeSeconds, Date.now, lifetimeSeconds < 600 ? 1 : 60),
        bundle,
      }),
  };
}

export type BackendKind =
  /** Echoes every byte; ends when the client ends. */
  | "echo"
  /** Reads until the client half-closes, then answers `<count> <sha256>\n` and ends. */
  | "count"
  /** Writes its name and ends at once. */
  | "whoami";

export interface Backend {
  port: number;
  name: string;
  connections: number;
  close(): Promise<void>;
}

export async function startBackend(name: string, kind: BackendKind, port = 0): Promise<Backend> {
  const sockets = new Set<net.Socket>();
  const backend: Backend = { port: 0, name, connections: 0, close: () => Promise.resolve() };
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    backend.connections++;
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
    s.on("error", () => {});
    if (kind === "echo") {
      s.pipe(s);
    } else if (kind === "count") {
      let count = 0;
      const hash = createHash("sha256");
      s.on("data", (c: Buffer) => {
        count += c.length;
        hash.update(c);
      });
      s.on("end", () => s.end(`${count} ${hash.digest("hex")}\n`));
    } else {
      s.end(`${name}\n`);
    }
  });
  await new Promise<void>((r) => server.listen(port, "127.0.0.1", r));
  backend.port = (server.address() as net.AddressInfo).port;
  backend.close = () =>
    new Promise<void>((r) => {
      for (const s of sockets) s.destroy();
      server.close(() => r());
    });
  return backend;
}

/** An HTTP backend answering `{"cluster": name}` (for curl). */
export async function startHttpBackend(name: string): Promise<Backend> {
  const backend: Backend = { port: 0, name, connections: 0, close: () => Promise.resolve() };
  const server = http.createServer((req, res) => {
    backend.connections++;
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify({ cluster: name, path: req.url }) + "\n");
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  backend.port = (server.address() as net.AddressInfo).port;
  backend.close = () =>
    new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    });
  return backend;
}

export interface UdpBackend {
  port: number;
  /** Source addresses (`ip:port`) datagrams came from: one per flow the gateway opened. */
  sources: Set<string>;
  close(): Promise<void>;
}

/** A UDP backend answering each datagram with `<name> <payload>`; `silent` answers nothing. */
export async function startUdpBackend(name: string, silent = false): Promise<UdpBackend> {
  const socket = dgram.createSocket("udp4");
  const backend: UdpBackend = {
    port: 0,
    sources: new Set(),
    close: () => new Promise<void>((r) => socket.close(() => r())),
  };
  socket.on("message", (payload, from) => {
    backend.sources.add(`${from.address}:${from.port}`);
    if (!silent) socket.send(`${name} ${payload.toString()}`, from.port, from.address);
  });
  await new Promise<void>((r) => socket.bind(0, "127.0.0.1", () => r()));
  backend.port = socket.address().port;
  return backend;
}

/** A UDP client socket: `ask` sends a datagram and resolves with the next answer, or undefined. */
export async function udpClient(): Promise<{
  ask(port: number, payload: string, timeoutMs?: number): Promise<string | undefined>;
  close(): void;
}> {
  const socket = dgram.createSocket("udp4");
  await new Promise<void>((r) => socket.bind(0, "127.0.0.1", () => r()));
  return {
    ask: (port, payload, timeoutMs = 2000) =>
      new Promise((resolve) => {
        const timer = setTimeout(() => {
          socket.off("message", onMessage);
          resolve(undefined);
        }, timeoutMs);
        const onMessage = (answer: Buffer): void => {
          clearTimeout(timer);
          resolve(answer.toString());
        };
        socket.once("message", onMessage);
        socket.send(payload, port, "127.0.0.1");
      }),
    close: () => socket.close(),
  };
}

export interface TestGateway {
  gateway: Gateway;
  routes: StaticRoutingSource;
  /** Local port of an imported `namespace/name:port`. */
  port(key: string): number;
}

export async function startGateway(
  clusterset: Clusterset,
  clusterId: string,
  table: RoutingTable,
  options: Partial<GatewayOptions> = {},
): Promise<TestGateway> {
  const routes = new StaticRoutingSource(table);
  const gateway = new Gateway({
    clusterId,
    identity: options.identity ?? clusterset.identity(clusterId),
    routes,
    peerListen: { host: "127.0.0.1", port: 0 },
    localListenHost: "127.0.0.1",
    logger: createLogger(`gateway-${clusterId}`, process.env["MERIDIAN_TEST_LOG_LEVEL"] ?? "silent"),
    probe: { intervalMs: 200, timeoutMs: 500, unhealthyAfter: 2 },
    ...options,
  });
  await gateway.start();
  return {
    gateway,
    routes,
    port: (key) => {
      const p = gateway.listenPorts().get(key);
      if (p === undefined) throw new Error(`no listener for ${key}`);
      return p;
    },
  };
}

/** Connects, writes `payload`, half-closes, and returns everything the other side sent. */
export function exchange(port: number, payload: Buffer | string = "", host = "127.0.0.1"): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host, allowHalfOpen: true });
    const chunks: Buffer[] = [];
    s.on("data", (c: Buffer) => chunks.push(c));
    s.on("error", reject);
    s.on("end", () => {
      s.end();
      resolve(Buffer.concat(chunks).toString());
    });
    s.on("close", () => reject(new Error("connection closed without an answer")));
    s.on("connect", () => s.end(payload));
  });
}

/** A loopback TCP connection: the dialing socket and the accepted one. */
export async function tcpPair(): Promise<{ client: net.Socket; wire: net.Socket; close: () => void }> {
  const server = net.createServer({ allowHalfOpen: true });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const accepted = new Promise<net.Socket>((r) => server.once("connection", r));
  const client = net.connect({
    port: (server.address() as net.AddressInfo).port,
    host: "127.0.0.1",
    allowHalfOpen: true,
  });
  await new Promise((r) => client.once("connect", r));
  const wire = await accepted;
  return {
    client,
    wire,
    close: () => {
      client.destroy();
      wire.destroy();
      server.close();
    },
  };
}

/**
 * The size of every write `socket` hands to the kernel from now on (a writev counts once): what
 * the data path's corking decides, seen where it matters.
 */
export function recordWrites(socket: net.Socket): number[] {
  const writes: number[] = [];
  const write = socket._write.bind(socket);
  const writev = socket._writev!.bind(socket);
  socket._write = (chunk: Buffer, encoding, callback) => {
    writes.push(chunk.length);
    write(chunk, encoding, callback);
  };
  socket._writev = (chunks, callback) => {
    writes.push(chunks.reduce((n, c) => n + (c.chunk as Buffer).length, 0));
    writev(chunks, callback);
  };
  return writes;
}
