/**
 * UDP through the gateways. A flow (one client address sending to one imported UDP port) is one
 * stream between the gateways, opened with the `datagram` kind; inside it each datagram is a record
 * of a 2-byte length and the payload, carried in DATA frames like any TCP bytes. `DatagramStream`
 * stands in for the TCP socket at either end (the client's flow on the importing gateway, a
 * connected UDP socket to an endpoint on the exporting one), so one stream path serves both
 * protocols: early data, failover to another cluster, access control, limits and metrics.
 *
 * UDP has no end: a flow ends when it has been idle for the flow timeout (no datagram either way),
 * and ending one direction ends both. Datagrams are dropped, never queued without bound, when the
 * stream cannot take them as fast as they come, as a congested network would.
 */
import dgram from "node:dgram";
import net from "node:net";
import { Duplex } from "node:stream";
import type { Endpoint } from "./routes.js";

/** A record's length field: 2 bytes hold any UDP payload (at most 65,527 bytes, IPv6 without jumbograms). */
const RECORD_HEADER = 2;
/** Received datagrams waiting for the stream beyond this many bytes are dropped. */
export const DATAGRAM_QUEUE_LIMIT = 256 * 1024;

/** A datagram as a record: its length (2 bytes, big-endian) and its payload. */
export function encodeRecord(payload: Buffer): Buffer {
  const out = Buffer.allocUnsafe(RECORD_HEADER + payload.length);
  out.writeUInt16BE(payload.length, 0);
  payload.copy(out, RECORD_HEADER);
  return out;
}

/** Splits a stream of records back into datagrams, whatever the chunk boundaries. */
export class RecordDecoder {
  private pending: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): Buffer[] {
    const buf = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    const out: Buffer[] = [];
    let offset = 0;
    while (buf.length - offset >= RECORD_HEADER) {
      const length = buf.readUInt16BE(offset);
      if (buf.length - offset - RECORD_HEADER < length) break;
      out.push(buf.subarray(offset + RECORD_HEADER, offset + RECORD_HEADER + length));
      offset += RECORD_HEADER + length;
    }
    this.pending = buf.subarray(offset);
    return out;
  }

  /** Bytes of a record not yet complete. */
  get buffered(): number {
    return this.pending.length;
  }
}

export interface DatagramStreamOptions {
  /** Sends one datagram to the other party: the client, or the endpoint. */
  send: (payload: Buffer) => void;
  /** Called once, when the stream stops receiving: the flow or the socket is let go. */
  release?: () => void;
  /** The other party's address (the client's is what source-namespace lookup reads). */
  remoteAddress?: string;
  /** The flow ends cleanly after this long without a datagram either way (0: never). */
  flowIdleMs?: number;
  /** Told of each datagram dropped because the stream is not taking them. */
  onDrop?: () => void;
}

/** Calls `fire` once `ms` pass with no activity; one timer per period, not one reset per datagram. */
class QuietTimer {
  private timer: NodeJS.Timeout;

  constructor(
    private readonly ms: number,
    private readonly lastActivity: () => number,
    private readonly fire: () => void,
  ) {
    this.timer = this.arm(ms);
  }

  stop(): void {
    clearTimeout(this.timer);
  }

  private arm(delay: number): NodeJS.Timeout {
    const timer = setTimeout(this.check, delay);
    timer.unref();
    return timer;
  }

  private readonly check = (): void => {
    const quiet = performance.now() - this.lastActivity();
    if (quiet >= this.ms) this.fire();
    else this.timer = this.arm(this.ms - quiet);
  };
}

/**
 * One UDP flow as a byte stream of records. Reading yields the datagrams it `receive`s; writing
 * takes records and sends each datagram. Ending either side ends both: the flow is over.
 */
export class DatagramStream extends Duplex {
  /** Payload bytes received from the other party (like a socket's `bytesRead`). */
  bytesRead = 0;
  /** Payload bytes sent to the other party. */
  bytesWritten = 0;
  readonly remoteAddress: string | undefined;
  private readonly decoder = new RecordDecoder();
  private receiving = true;
  private released = false;
  private lastActivity = performance.now();
  private readonly since = (): number => this.lastActivity;
  private idleTimer: QuietTimer | undefined;
  private readonly flowTimer: QuietTimer | undefined;

  constructor(private readonly o: DatagramStreamOptions) {
    super({ allowHalfOpen: true });
    this.remoteAddress = o.remoteAddress;
    if (o.flowIdleMs) this.flowTimer = new QuietTimer(o.flowIdleMs, this.since, () => this.stopReceiving());
  }

  /** A datagram from the other party. */
  receive(payload: Buffer): void {
    if (!this.receiving) return;
    if (this.readableLength >= DATAGRAM_QUEUE_LIMIT) return void this.o.onDrop?.();
    this.bytesRead += payload.length;
    this.lastActivity = performance.now();
    this.push(encodeRecord(payload));
  }

  /** No more datagrams will be read: the readable side ends, and the flow is released. */
  stopReceiving(): void {
    if (!this.receiving) return;
    this.receiving = false;
    this.release();
    this.push(null);
  }

  /** Like `net.Socket#setTimeout`: "timeout" after `ms` without a datagram either way (0 disarms). */
  setTimeout(ms: number, callback?: () => void): this {
    this.idleTimer?.stop();
    this.idleTimer = undefined;
    if (callback) this.once("timeout", callback);
    if (ms > 0) this.idleTimer = new QuietTimer(ms, this.since, () => this.emit("timeout"));
    return this;
  }

  override _read(): void {}

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.lastActivity = performance.now();
    try {
      for (const payload of this.decoder.push(chunk)) {
        this.bytesWritten += payload.length;
        this.o.send(payload);
      }
      callback();
    } catch (err) {
      callback(err as Error);
    }
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.stopReceiving();
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.receiving = false;
    this.idleTimer?.stop();
    this.release();
    callback(error);
  }

  private release(): void {
    if (this.released) return;
    this.released = true;
    this.flowTimer?.stop();
    this.o.release?.();
  }
}

/**
 * The importing gateway's socket for one imported UDP port: every client address sending to it is
 * a flow, handed to `onFlow` on its first datagram (paused, like an accepted TCP socket). A flow
 * that has ended frees its address: the client's next datagram starts a new one.
 */
export class DatagramListener {
  private readonly socket: dgram.Socket;
  private readonly flows = new Map<string, DatagramStream>();

  constructor(
    host: string,
    /** Read for each new flow, so a changed setting applies to the next flows. */
    private readonly flowIdleMs: () => number,
    private readonly onFlow: (flow: DatagramStream) => void,
    private readonly onDrop: () => void,
  ) {
    this.socket = dgram.createSocket({ type: net.isIPv6(host) ? "udp6" : "udp4" });
    this.socket.on("message", (payload, from) => this.onMessage(payload, from));
  }

  listen(port: number, host: string): Promise<number> {
    return new Promise((resolve, reject) => {
      this.socket.once("error", reject);
      this.socket.bind(port, host, () => {
        this.socket.off("error", reject);
        // A send to a client that has gone (ICMP unreachable) must not end the listener.
        this.socket.on("error", () => {});
        resolve(this.socket.address().port);
      });
    });
  }

  /** Stops receiving; flows already open end, as their socket is gone. */
  close(): void {
    for (const flow of this.flows.values()) flow.stopReceiving();
    try {
      this.socket.close();
    } catch {
      // never bound
    }
  }

  private onMessage(payload: Buffer, from: dgram.RemoteInfo): void {
    const key = `${from.address}:${from.port}`;
    let flow = this.flows.get(key);
    if (!flow) {
      const created: DatagramStream = new DatagramStream({
        send: (p) => this.socket.send(p, from.port, from.address),
        release: () => {
          if (this.flows.get(key) === created) this.flows.delete(key);
        },
        remoteAddress: from.address,
        flowIdleMs: this.flowIdleMs(),
        onDrop: this.onDrop,
      });
      flow = created;
      flow.pause();
      this.flows.set(key, flow);
      this.onFlow(flow);
    }
    flow.receive(payload);
  }
}

/** A connected UDP socket to an endpoint, as a stream of records; rejects if it cannot connect. */
export function connectDatagram(e: Endpoint, onDrop: () => void): Promise<DatagramStream> {
  const socket = dgram.createSocket({ type: net.isIPv6(e.address) ? "udp6" : "udp4" });
  return new Promise((resolve, reject) => {
    socket.once("error", (err) => {
      socket.close();
      reject(err);
    });
    socket.connect(e.port, e.address, () => {
      socket.removeAllListeners("error");
      const stream = new DatagramStream({
        send: (p) => socket.send(p),
        release: () => socket.close(),
        remoteAddress: e.address,
        onDrop,
      });
      socket.on("message", (payload) => stream.receive(payload));
      // An endpoint that is not listening answers with ICMP, which a connected socket reports here.
      socket.on("error", (err) => stream.destroy(err));
      resolve(stream);
    });
  });
}
