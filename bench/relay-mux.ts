/**
 * Stream multiplexing for the bare Node relay (bench/gateway-node-relay.ts `muxConnections`): what
 * multiplexing would cost and save before the gateway chooses it (ADR 4 chose one TLS connection
 * per concurrent stream). Many client connections share a few long-lived mTLS connections; each
 * stream has its own credit window, so a slow reader stalls only its stream, and frames written
 * in one event-loop turn leave in one TLS write however many streams they belong to.
 *
 * Frame: type (1 byte), stream id (4), payload length (4), payload. OPEN carries the target's
 * name, DATA bytes, FIN the end of one direction (TCP half-close), RESET the end of both after an
 * error, WINDOW (4-byte count) the credit handed back as the receiver's socket takes the bytes.
 */
import type net from "node:net";
import type tls from "node:tls";

export const FRAME = { open: 1, data: 2, fin: 3, reset: 4, window: 5 } as const;
export type FrameType = (typeof FRAME)[keyof typeof FRAME];
export const HEADER_BYTES = 9;
/**
 * Bytes a side may send on a new stream ahead of the receiver's socket taking them. The receiver
 * doubles a stream's window each time it hands credit back while its socket keeps up, up to
 * MAX_STREAM_WINDOW: a bulk stream needs megabytes in flight to fill a fast path (256 KiB held
 * iperf3 to half of HAProxy's rate on loopback, 4 MiB matched it), while a stalled reader's
 * stream stays small, so the worst case a slow client makes the gateway hold stays bounded.
 */
export const INITIAL_STREAM_WINDOW = 256 * 1024;
export const MAX_STREAM_WINDOW = 8 * 2 ** 20;

export function frameHeader(type: FrameType, stream: number, length: number): Buffer {
  const header = Buffer.allocUnsafe(HEADER_BYTES);
  header.writeUInt8(type, 0);
  header.writeUInt32BE(stream, 1);
  header.writeUInt32BE(length, 5);
  return header;
}

export type FrameHandler = (type: number, stream: number, payload: Buffer) => void;

/**
 * Splits the bytes of a TLS connection into frames. DATA payloads are handed on piece by piece as
 * they arrive (a 64 KiB frame is never held back for its last record); other frames whole.
 */
export class FrameReader {
  private held: Buffer | undefined;
  /** The DATA frame being passed through: its stream and the bytes still to come. */
  private dataStream = 0;
  private dataLeft = 0;

  constructor(private readonly onFrame: FrameHandler) {}

  push(chunk: Buffer): void {
    const buf = this.held ? Buffer.concat([this.held, chunk]) : chunk;
    this.held = undefined;
    let at = 0;
    while (at < buf.length) {
      if (this.dataLeft > 0) {
        const take = Math.min(this.dataLeft, buf.length - at);
        this.dataLeft -= take;
        this.onFrame(FRAME.data, this.dataStream, buf.subarray(at, at + take));
        at += take;
        continue;
      }
      if (buf.length - at < HEADER_BYTES) break;
      const type = buf.readUInt8(at);
      const stream = buf.readUInt32BE(at + 1);
      const length = buf.readUInt32BE(at + 5);
      if (type === FRAME.data) {
        at += HEADER_BYTES;
        this.dataStream = stream;
        this.dataLeft = length;
        continue;
      }
      if (buf.length - at < HEADER_BYTES + length) break;
      this.onFrame(type, stream, buf.subarray(at + HEADER_BYTES, at + HEADER_BYTES + length));
      at += HEADER_BYTES + length;
    }
    if (at < buf.length) this.held = Buffer.from(buf.subarray(at));
  }
}

/** One relayed TCP connection: a local socket on this side, a stream id on the shared connection. */
class MuxStream {
  /** Bytes this side may still send before the peer hands credit back. */
  private credit = INITIAL_STREAM_WINDOW;
  /** What this side lets the peer have in flight; grows while the local socket keeps up. */
  private window = INITIAL_STREAM_WINDOW;
  /** Bytes received and taken by the local socket, not yet handed back as credit. */
  private taken = 0;
  private sentFin = false;
  private gotFin = false;
  private peerReset = false;

  constructor(
    private readonly conn: MuxConnection,
    readonly id: number,
    private readonly local: net.Socket,
  ) {
    local.on("data", (chunk: Buffer) => {
      conn.send(frameHeader(FRAME.data, id, chunk.length), chunk);
      this.credit -= chunk.length;
      if (this.credit <= 0) local.pause();
    });
    local.on("end", () => {
      this.sentFin = true;
      conn.send(frameHeader(FRAME.fin, id, 0));
    });
    local.on("drain", () => this.handBack());
    local.on("error", () => local.destroy());
    local.on("close", () => {
      conn.forget(id);
      // Closed before both ends were passed on: the peer must cut its side too.
      if (!this.peerReset && !(this.sentFin && this.gotFin)) conn.send(frameHeader(FRAME.reset, id, 0));
    });
  }

  received(type: number, payload: Buffer): void {
    switch (type) {
      case FRAME.data:
        this.taken += payload.length;
        if (this.local.write(payload)) this.handBack();
        return;
      case FRAME.window:
        if (payload.length < 4) return;
        this.credit += payload.readUInt32BE(0);
        if (this.credit > 0 && this.local.isPaused()) this.local.resume();
        return;
      case FRAME.fin:
        this.gotFin = true;
        this.local.end();
        return;
      case FRAME.reset:
        this.peerReset = true;
        this.local.destroy();
        return;
      default:
    }
  }

  /**
   * Credit goes back only once the local socket has taken the bytes (its buffer below the mark),
   * in batches of a quarter window, so short streams never send a WINDOW frame.
   */
  private handBack(): void {
    if (this.taken < this.window / 4 || this.local.writableNeedDrain) return;
    let credit = this.taken;
    if (this.window < MAX_STREAM_WINDOW) {
      credit += this.window;
      this.window *= 2;
    }
    const grant = Buffer.allocUnsafe(4);
    grant.writeUInt32BE(credit, 0);
    this.taken = 0;
    this.conn.send(frameHeader(FRAME.window, this.id, 4), grant);
  }

  cut(): void {
    this.peerReset = true;
    this.local.destroy();
  }
}

/**
 * One mTLS connection carrying many streams. The side that opens streams gives them odd ids; an
 * OPEN from the peer goes to `onOpen`, which returns the local socket to relay to (or undefined to
 * refuse with a RESET).
 */
export class MuxConnection {
  private readonly streams = new Map<number, MuxStream>();
  private nextId = 1;
  private corked = false;
  private readonly reader = new FrameReader((type, id, payload) => this.dispatch(type, id, payload));

  constructor(
    readonly socket: tls.TLSSocket,
    private readonly onOpen?: (name: string) => net.Socket | undefined,
  ) {
    socket.on("data", (chunk: Buffer) => this.reader.push(chunk));
    socket.on("error", () => socket.destroy());
    socket.on("close", () => {
      for (const stream of [...this.streams.values()]) stream.cut();
      this.streams.clear();
    });
  }

  get streamCount(): number {
    return this.streams.size;
  }

  get closed(): boolean {
    return this.socket.destroyed;
  }

  /** Relays `local` to the peer's target called `name`. */
  open(name: string, local: net.Socket): void {
    const id = this.nextId;
    this.nextId += 2;
    const payload = Buffer.from(name, "utf8");
    this.send(frameHeader(FRAME.open, id, payload.length), payload);
    this.streams.set(id, new MuxStream(this, id, local));
  }

  /** Frames sent in one event-loop turn share one write to the TLS socket (and so its records). */
  send(header: Buffer, payload?: Buffer): void {
    if (this.socket.destroyed) return;
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      setImmediate(() => {
        this.corked = false;
        this.socket.uncork();
      });
    }
    this.socket.write(header);
    if (payload && payload.length > 0) this.socket.write(payload);
  }

  forget(id: number): void {
    this.streams.delete(id);
  }

  private dispatch(type: number, id: number, payload: Buffer): void {
    if (type === FRAME.open) {
      const local = this.onOpen?.(payload.toString("utf8"));
      if (!local) this.send(frameHeader(FRAME.reset, id, 0));
      else this.streams.set(id, new MuxStream(this, id, local));
      return;
    }
    // Frames for a stream already gone (crossed a RESET) are dropped.
    this.streams.get(id)?.received(type, payload);
  }
}
