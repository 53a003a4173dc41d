/**
 * UDP + TCP listener for the `clusterset.local` zone. All DNS logic lives in `wire.ts`; this file
 * only moves bytes, frames TCP (RFC 7766: 2-byte length prefix, pipelined queries, idle timeout) and
 * keeps the process alive whatever arrives.
 */
import { createSocket } from "node:dgram";
import type { RemoteInfo, Socket as UdpSocket } from "node:dgram";
import { createServer } from "node:net";
import type { AddressInfo, Server as TcpServer, Socket as TcpSocket } from "node:net";
import { DEFAULT_RESOLVE_OPTIONS, validateResolveOptions } from "./resolve.js";
import type { ResolveOptions } from "./resolve.js";
import { handleDnsMessage } from "./wire.js";
import type { DnsForwarder, DnsHandlerOptions, DnsReply, QueryInfo, Transport } from "./wire.js";
import type { ZoneView } from "./zone.js";

/** One answered (or dropped) message, for metrics. */
export interface DnsQueryEvent {
  readonly transport: Transport;
  /** Question type, -1 when the message could not be parsed. */
  readonly qtype: number;
  /** Response code sent, -1 when nothing was sent. */
  readonly rcode: number;
  readonly truncated: boolean;
  readonly forwarded: boolean;
  /** Time spent producing the response. */
  readonly durationSeconds: number;
}

/**
 * Metrics/logging hooks, injected so tests stay isolated (no global registry). Called synchronously
 * on the query path: keep them cheap.
 */
export interface DnsServerObserver {
  onQuery?(event: DnsQueryEvent): void;
  /** Socket-level problems (send failures, resets, framing errors); the server keeps running. */
  onError?(error: Error, context: string): void;
}

/** Options of {@link startDnsServer}. */
export interface DnsServerOptions {
  /** Address to bind; default `127.0.0.1`. An address containing `:` binds IPv6. */
  readonly host?: string;
  /** Port for both UDP and TCP; 0 picks a free one (the same for both). */
  readonly port: number;
  readonly zone: ZoneView;
  /** Zone apex, TTL and nameserver addresses; defaults to `clusterset.local`, TTL 5. */
  readonly resolve?: ResolveOptions;
  /** See {@link DnsHandlerOptions.maxUdpPayload}. */
  readonly maxUdpPayload?: number;
  readonly forwarder?: DnsForwarder;
  /** Close TCP connections idle this long (ms); default 10 000. */
  readonly tcpIdleTimeoutMs?: number;
  /** Largest TCP query accepted; a longer length prefix closes the connection. Default 65535. */
  readonly maxTcpMessageBytes?: number;
  /** Concurrent TCP connections; default 1000. */
  readonly maxTcpConnections?: number;
  /** Attempts to find a port free for both protocols when `port` is 0; default 20. */
  readonly bindAttempts?: number;
  readonly observer?: DnsServerObserver;
}

/** A running server. */
export interface DnsServerHandle {
  readonly host: string;
  readonly udpPort: number;
  readonly tcpPort: number;
  /** Stops listening, closes open TCP connections, and resolves when both sockets are closed. */
  close(): Promise<void>;
}

const DEFAULT_HOST = "127.0.0.1";
const DEFAULT_IDLE_MS = 10_000;
const DEFAULT_MAX_TCP_CONNECTIONS = 1000;
const DEFAULT_BIND_ATTEMPTS = 20;
const MAX_TCP_MESSAGE = 65535;
/** Stop reading from a TCP client that does not read its answers once this much is queued. */
const TCP_BACKLOG_BYTES = 256 * 1024;

/**
 * Starts the DNS server on UDP and TCP. With port 0, TCP binds first to obtain a free port and UDP
 * then binds the same number; if UDP finds it taken, both retry on a new port.
 */
export async function startDnsServer(options: DnsServerOptions): Promise<DnsServerHandle> {
  const host = options.host ?? DEFAULT_HOST;
  validateResolveOptions(options.resolve ?? DEFAULT_RESOLVE_OPTIONS);
  const handlerOptions: DnsHandlerOptions = {
    zone: options.zone,
    resolve: options.resolve ?? DEFAULT_RESOLVE_OPTIONS,
    ...(options.maxUdpPayload !== undefined ? { maxUdpPayload: options.maxUdpPayload } : {}),
    ...(options.forwarder ? { forwarder: options.forwarder } : {}),
  };
  const answer = makeAnswerer(handlerOptions, options.observer);
  const connections = new Set<TcpSocket>();
  const attempts = options.port === 0 ? (options.bindAttempts ?? DEFAULT_BIND_ATTEMPTS) : 1;
  for (let attempt = 1; ; attempt++) {
    const tcp = createTcpServer(answer, connections, options);
    const port = await listenTcp(tcp, options.port, host);
    const udp = createUdpSocket(host, answer, options.observer);
    try {
      await bindUdp(udp, port, host);
      watchForErrors(tcp, udp, options.observer);
      return handle(host, port, tcp, udp, connections);
    } catch (error) {
      closeQuietly(udp);
      await closeTcp(tcp);
      if (attempt >= attempts || (error as NodeJS.ErrnoException).code !== "EADDRINUSE") throw error;
    }
  }
}

type Answerer = (request: Buffer, transport: Transport, send: (reply: Buffer | null) => void) => void;

function makeAnswerer(handlerOptions: DnsHandlerOptions, observer: DnsServerObserver | undefined): Answerer {
  const onQuery = observer?.onQuery?.bind(observer);
  const onError = observer?.onError?.bind(observer);
  if (!onQuery) {
    return (request, transport, send) =>
      deliver(handleDnsMessage(request, transport, handlerOptions), send, onError);
  }
  const info: QueryInfo = { qtype: -1, rcode: -1, truncated: false, forwarded: false };
  return (request, transport, send) => {
    const started = process.hrtime.bigint();
    const reply = handleDnsMessage(request, transport, handlerOptions, info);
    const { qtype, rcode, truncated, forwarded } = info;
    const report = (sent: Buffer | null): void => {
      const durationSeconds = Number(process.hrtime.bigint() - started) / 1e9;
      safely(
        () => onQuery({ transport, qtype, rcode: sent ? rcode : -1, truncated, forwarded, durationSeconds }),
        onError,
      );
    };
    deliver(
      reply,
      (sent) => {
        report(sent);
        send(sent);
      },
      onError,
    );
  };
}

function deliver(
  reply: DnsReply,
  send: (reply: Buffer | null) => void,
  onError?: DnsServerObserver["onError"],
): void {
  if (reply instanceof Promise) {
    reply.then(send, (error: unknown) => {
      onError?.(toError(error), "forwarder");
      send(null);
    });
  } else {
    send(reply);
  }
}

function createUdpSocket(host: string, answer: Answerer, observer: DnsServerObserver | undefined): UdpSocket {
  const udp = createSocket(host.includes(":") ? "udp6" : "udp4");
  udp.on("message", (message: Buffer, peer: RemoteInfo) => {
    answer(message, "udp", (reply) => {
      if (!reply) return;
      udp.send(reply, peer.port, peer.address, (error) => {
        if (error) observer?.onError?.(error, "udp send");
      });
    });
  });
  return udp;
}

/**
 * Attached once both sockets are bound (bind errors are reported by the promise instead): without
 * a listener an 'error' event would throw and end the process.
 */
function watchForErrors(tcp: TcpServer, udp: UdpSocket, observer: DnsServerObserver | undefined): void {
  udp.on("error", (error) => observer?.onError?.(error, "udp socket"));
  tcp.on("error", (error) => observer?.onError?.(error, "tcp server"));
}

function createTcpServer(
  answer: Answerer,
  connections: Set<TcpSocket>,
  options: DnsServerOptions,
): TcpServer {
  const idleMs = options.tcpIdleTimeoutMs ?? DEFAULT_IDLE_MS;
  const maxMessage = Math.min(options.maxTcpMessageBytes ?? MAX_TCP_MESSAGE, MAX_TCP_MESSAGE);
  const server = createServer({ noDelay: true }, (socket) => {
    connections.add(socket);
    socket.on("close", () => connections.delete(socket));
    socket.on("error", (error) => options.observer?.onError?.(error, "tcp connection"));
    socket.setTimeout(idleMs, () => socket.destroy());
    serveTcpConnection(socket, answer, maxMessage, options.observer);
  });
  server.maxConnections = options.maxTcpConnections ?? DEFAULT_MAX_TCP_CONNECTIONS;
  return server;
}

/**
 * Reads length-prefixed messages and answers each in order as soon as it is complete (pipelining).
 * A zero or oversized length, or a message we cannot answer at all, closes the connection: the
 * stream can no longer be trusted to be in frame.
 */
function serveTcpConnection(
  socket: TcpSocket,
  answer: Answerer,
  maxMessage: number,
  observer: DnsServerObserver | undefined,
): void {
  let pending: Buffer | undefined;
  const write = (reply: Buffer | null): void => {
    if (socket.destroyed) return;
    if (!reply) {
      socket.destroy();
      return;
    }
    const frame = Buffer.allocUnsafe(reply.length + 2);
    frame.writeUInt16BE(reply.length, 0);
    reply.copy(frame, 2);
    socket.write(frame);
    if (socket.writableLength > TCP_BACKLOG_BYTES && !socket.isPaused()) {
      socket.pause();
      socket.once("drain", () => socket.resume());
    }
  };
  socket.on("data", (chunk: Buffer) => {
    let data = pending ? Buffer.concat([pending, chunk]) : chunk;
    pending = undefined;
    let offset = 0;
    while (data.length - offset >= 2 && !socket.destroyed) {
      const length = data.readUInt16BE(offset);
      if (length === 0 || length > maxMessage) {
        observer?.onError?.(new Error(`bad TCP frame length ${length}`), "tcp framing");
        socket.destroy();
        return;
      }
      if (data.length - offset - 2 < length) break;
      const message = data.subarray(offset + 2, offset + 2 + length);
      offset += 2 + length;
      answer(message, "tcp", write);
    }
    if (offset < data.length) {
      // Copy so a large chunk is not kept alive by a small unfinished tail.
      data = data.subarray(offset);
      pending = Buffer.from(data);
    }
  });
}

function listenTcp(server: TcpServer, port: number, host: string): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const onError = (error: Error): void => reject(error);
    server.once("error", onError);
    server.listen({ port, host, exclusive: true }, () => {
      server.off("error", onError);
      resolvePort((server.address() as AddressInfo).port);
    });
  });
}

function bindUdp(socket: UdpSocket, port: number, host: string): Promise<void> {
  return new Promise((resolveBind, reject) => {
    const onError = (error: Error): void => reject(error);
    socket.once("error", onError);
    socket.bind({ port, address: host, exclusive: true }, () => {
      socket.off("error", onError);
      resolveBind();
    });
  });
}

function closeQuietly(socket: UdpSocket): void {
  try {
    socket.close();
  } catch {
    // Already closed: nothing to release.
  }
}

function closeTcp(server: TcpServer): Promise<void> {
  return new Promise((resolveClose) => server.close(() => resolveClose()));
}

function handle(
  host: string,
  port: number,
  tcp: TcpServer,
  udp: UdpSocket,
  connections: Set<TcpSocket>,
): DnsServerHandle {
  let closing: Promise<void> | undefined;
  return {
    host,
    udpPort: udp.address().port,
    tcpPort: port,
    close(): Promise<void> {
      if (!closing) {
        const udpClosed = new Promise<void>((resolveClose) => udp.close(() => resolveClose()));
        const tcpClosed = closeTcp(tcp);
        // server.close() waits for open connections; idle keep-alive clients would hold it forever.
        for (const socket of connections) socket.destroy();
        closing = Promise.all([udpClosed, tcpClosed]).then(() => undefined);
      }
      return closing;
    },
  };
}

function safely(action: () => void, onError: DnsServerObserver["onError"]): void {
  try {
    action();
  } catch (error) {
    onError?.(toError(error), "observer");
  }
}

function toError(value: unknown): Error {
  return value instanceof Error ? value : new Error(String(value));
}
