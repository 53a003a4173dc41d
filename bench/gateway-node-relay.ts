/**
 * The floor under Meridian's gateway: a bare Node.js relay pair doing HAProxy's job and nothing
 * else. A takes plain TCP and opens a new mutually authenticated TLS 1.3 connection to B for each
 * client connection (no framing, no pool, no routing, no metrics); B connects to the backend and
 * the bytes are piped both ways. It runs on Node with the gateways' V8 flags. bench/gateway.ts
 * `--with-node-relay` measures it beside Meridian and HAProxy: the gap between this pair and
 * HAProxy is what Node's own net and TLS layers cost, the gap between Meridian and this pair is
 * Meridian's own code.
 *
 *   node [GATEWAY_NODE_FLAGS] bench/gateway-node-relay.ts a|b CONFIG.json
 *
 * CONFIG: { listenHost, listen: {name: port}, targetHost, target: {name: port}, cert, key, ca,
 * serverName, muxConnections? }: each `listen` port relays to the `target` port of the same name.
 * With `muxConnections` set (bench/gateway.ts `--with-mux-relay`), A instead keeps that many mTLS
 * connections to B's one `mux` port and carries every client connection as a stream over them
 * (src/gateway/mux.ts, the gateway's own multiplexing); B's `listen` is then just `mux`. Prints
 * "ready" once every port listens.
 */
import { readFileSync } from "node:fs";
import net from "node:net";
import tls from "node:tls";
import type { MuxChannel } from "../src/gateway/mux.js";
import { leastLoaded, MuxConnection } from "../src/gateway/mux.js";

interface RelayConfig {
  listenHost: string;
  listen: Record<string, number>;
  targetHost: string;
  target: Record<string, number>;
  cert: string;
  key: string;
  ca: string;
  /** The name B's certificate must carry (A checks it, as HAProxy's `verifyhost` does). */
  serverName: string;
  /** Multiplexed: how many TLS connections A keeps to B. */
  muxConnections?: number;
}

const [role, configFile] = process.argv.slice(2);
if ((role !== "a" && role !== "b") || !configFile)
  throw new Error("usage: gateway-node-relay.ts a|b CONFIG.json");
const config = JSON.parse(readFileSync(configFile, "utf8")) as RelayConfig;
const credentials = {
  cert: readFileSync(config.cert),
  key: readFileSync(config.key),
  ca: readFileSync(config.ca),
  minVersion: "TLSv1.3" as const,
};

/** Both directions with backpressure; each side's end is passed on (half-close), an error cuts both. */
function relay(a: net.Socket, b: net.Socket | MuxChannel): void {
  a.pipe(b);
  b.pipe(a);
  const cut = (): void => {
    a.destroy();
    b.destroy();
  };
  a.on("error", cut);
  b.on("error", cut);
}

/** `relay` for a channel: a channel cut (not ended both ways) cuts the socket too. */
function relayChannel(socket: net.Socket, channel: MuxChannel): void {
  relay(socket, channel);
  channel.on("close", () => {
    if (!(channel.readableEnded && channel.writableFinished)) socket.destroy();
  });
}

/** A TCP socket with Nagle off: a TLSSocket's own setNoDelay does not reach the TCP handle. */
function tcpTo(host: string, port: number): net.Socket {
  return net.connect({ host, port, noDelay: true, allowHalfOpen: true });
}

function listening(server: net.Server, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host: config.listenHost, port, backlog: 4096 }, resolve);
  });
}

/** A's multiplexed side: a fixed set of mTLS connections to B, each replaced when it closes. */
function muxConnections(count: number): () => MuxConnection | undefined {
  const port = config.target["mux"];
  if (port === undefined) throw new Error("a multiplexed A needs a target port called mux");
  const connections: MuxConnection[] = [];
  const connect = (slot: number): Promise<void> =>
    new Promise((resolve, reject) => {
      const socket = tls.connect({
        ...credentials,
        socket: tcpTo(config.targetHost, port),
        servername: config.serverName,
      });
      socket.once("secureConnect", () => {
        connections[slot] = new MuxConnection(socket);
        socket.once("close", () => setTimeout(() => void connect(slot).catch(() => {}), 100));
        resolve();
      });
      socket.once("error", reject);
    });
  ready.push(Promise.all(Array.from({ length: count }, (_, slot) => connect(slot))).then(() => {}));
  return () => leastLoaded(connections);
}

const ready: Promise<void>[] = [];
const muxed = config.muxConnections;
const pickConnection = role === "a" && muxed !== undefined ? muxConnections(muxed) : undefined;
if (role === "b" && muxed !== undefined) {
  const port = config.listen["mux"];
  if (port === undefined) throw new Error("a multiplexed B needs a listen port called mux");
  const server = tls.createServer(
    { ...credentials, requestCert: true, rejectUnauthorized: true },
    (socket) =>
      new MuxConnection(socket, (channel, label) => {
        const target = config.target[label.toString()];
        if (target === undefined) channel.destroy();
        else relayChannel(tcpTo(config.targetHost, target), channel);
      }),
  );
  server.on("connection", (raw: net.Socket) => raw.setNoDelay(true));
  server.on("tlsClientError", () => {});
  ready.push(listening(server, port));
}

const servers = Object.entries(config.listen).map(([name, port]) => {
  if (muxed !== undefined && role === "b") return Promise.resolve();
  if (pickConnection) {
    const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (client) => {
      const connection = pickConnection();
      if (connection) relayChannel(client, connection.open(Buffer.from(name)));
      else client.destroy();
    });
    return listening(server, port);
  }
  const targetPort = config.target[name];
  if (targetPort === undefined) throw new Error(`no target port for ${name}`);
  if (role === "a") {
    const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (client) => {
      // allowHalfOpen reaches the TLSSocket but is missing from the types.
      const options: tls.ConnectionOptions & { allowHalfOpen: boolean } = {
        ...credentials,
        socket: tcpTo(config.targetHost, targetPort),
        servername: config.serverName,
        allowHalfOpen: true,
      };
      const tunnel = tls.connect(options);
      relay(client, tunnel);
    });
    return listening(server, port);
  }
  const server = tls.createServer(
    { ...credentials, requestCert: true, rejectUnauthorized: true, allowHalfOpen: true },
    (tunnel) => relay(tunnel, tcpTo(config.targetHost, targetPort)),
  );
  server.on("connection", (raw: net.Socket) => raw.setNoDelay(true));
  server.on("tlsClientError", () => {});
  return listening(server, port);
});
await Promise.all([...servers, ...ready]);
process.stdout.write("ready\n");
// A clean exit on the bench's SIGTERM, so that `--cpu-prof` (bench/gateway.ts `--profile`) writes its profile.
process.once("SIGTERM", () => process.exit(0));
