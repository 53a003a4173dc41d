/**
 * Byte pumps. Both keep TCP half-close intact (sockets must be created with `allowHalfOpen`):
 * when one side ends its writes, the other side's write end is closed and the reverse direction
 * keeps flowing until it ends too. Backpressure: a side whose destination buffer is full is paused
 * until it drains, so memory per connection stays bounded whatever the speed mismatch.
 */
import { Socket } from "node:net";
import type { Duplex } from "node:stream";
import { finished, pipeline } from "node:stream";
import type { ReplyStatusName } from "./protocol.js";
import {
  dataHeader,
  encodeData,
  FIN_FRAME,
  FrameDecoder,
  MAX_FRAME_PAYLOAD,
  REPLY_NAMES,
} from "./protocol.js";

/** The unframed end of a stream: a TCP socket, or a UDP flow standing in for one (datagram.ts). */
export interface PlainSocket extends Duplex {
  /** "timeout" after this long with no bytes either way (0 disarms), as `net.Socket#setTimeout`. */
  setTimeout(ms: number, callback?: () => void): unknown;
  readonly bytesRead: number;
  readonly bytesWritten: number;
  readonly remoteAddress?: string | undefined;
}

export interface PumpResult {
  /** Bytes read from the plain socket (client or backend) and forwarded. */
  fromPlain: number;
  /** Bytes written to the plain socket. */
  toPlain: number;
  /** Both directions ended cleanly (FIN both ways); otherwise something was cut. */
  clean: boolean;
}

export interface BridgeResult extends PumpResult {
  /** The tunnel can carry another stream (only when clean, or after a refusal). */
  reusable: boolean;
  /** Bytes read from the tunnel after the stream ended: the start of the next stream. */
  leftover: Buffer;
  /**
   * Opening streams only: the stream never started. `refused` is the peer's reply; absent, the
   * tunnel failed before any reply. The plain socket is left open (paused) for another attempt.
   */
  notOpened?: { refused?: ReplyStatusName };
}

/**
 * The client's bytes sent to a peer gateway that has not replied yet: kept so that another cluster
 * can be tried with them if this one refuses. Shared by the attempts of one client connection.
 */
export interface EarlyData {
  chunks: Buffer[];
  bytes: number;
  /** The client ended its writes (its FIN was read). */
  ended: boolean;
}

/**
 * Bytes queued for a socket before its source is paused (per direction). Well above the streams'
 * 16 KiB highWaterMark: with 64 KiB reads and 16 KiB TLS records, every single write crossed that
 * mark, and pausing and resuming the source after each chunk cost more than the copy itself.
 */
export const WRITE_BUFFER_LIMIT = 256 * 1024;

/** Client bytes kept unacknowledged before the plain socket is paused to wait for the reply. */
export const EARLY_DATA_LIMIT = 64 * 1024;

export interface OpeningStream {
  /** The encoded OPEN, written first. */
  open: Buffer;
  /** Client bytes already read (replayed right behind the OPEN); grows until the reply. */
  early: EarlyData;
  /** No reply in this long fails the attempt. */
  replyTimeoutMs: number;
  /** Called when the peer accepts the stream. */
  onAccepted?: () => void;
}

/** Which end of a stream this gateway is, and what that end starts with. */
export type StreamEnd =
  | { role: "importing"; opening: OpeningStream }
  | {
      role: "exporting";
      /** Stream bytes that arrived with the OPEN. */
      initial: Buffer;
      /** The reply still to send (absent when it has been sent already). */
      reply?: Buffer;
    };

/**
 * A chunk at least this large is bulk: its DATA frame is written without a copy, and the socket it
 * goes to stays corked until the turn ends so that a turn's bulk chunks leave in one writev.
 * Smaller chunks (requests, replies) are copied into one buffer and sent at once, adding no delay.
 */
const BULK_CHUNK = 8 * 1024;

/**
 * How long a stream's lead (the importing side's OPEN, the exporting side's "ok" reply) waits for
 * the first bytes going the same way, to leave with them in one TLS record instead of costing a
 * record, a write and a read of its own. Waiting one event-loop turn was too short on a busy
 * machine: the client, just told its connect succeeded, had not written yet, so nearly every OPEN
 * left alone. Neither wait delays data: bytes that come send the lead at once. A protocol where the
 * server speaks first sends its OPEN this much later; a reply that waits holds back nothing, as the
 * importing gateway sends the client's bytes without waiting for it (early data).
 */
const LEAD_WAIT_MS = 1;

/**
 * Writes `chunk` as DATA frames: small ones copied into one buffer (one plain write), large ones
 * with the header and payload corked into one writev (no payload copy in JavaScript; the copy,
 * allocation and garbage collection of 64 KiB frames were a third of a bulk stream's CPU). A
 * writev costs more than a small copy, so small chunks (requests, replies) take the copy.
 */
export function writeData(tunnel: Duplex, chunk: Buffer): void {
  if (chunk.length < BULK_CHUNK) {
    tunnel.write(encodeData(chunk));
    return;
  }
  tunnel.cork();
  for (let i = 0; i < chunk.length; i += MAX_FRAME_PAYLOAD) {
    const part = chunk.length <= MAX_FRAME_PAYLOAD ? chunk : chunk.subarray(i, i + MAX_FRAME_PAYLOAD);
    tunnel.write(dataHeader(part.length));
    tunnel.write(part);
  }
  tunnel.uncork();
}

/** Corks a socket until the check phase of the current event-loop turn (at most once per turn). */
class TurnCork {
  private pending: NodeJS.Immediate | undefined;

  constructor(private readonly socket: Duplex) {}

  cork(): void {
    if (this.pending) return;
    this.socket.cork();
    this.pending = setImmediate(this.uncork);
  }

  /** Sends what is corked now. */
  flush(): void {
    if (!this.pending) return;
    clearImmediate(this.pending);
    this.uncork();
  }

  private readonly uncork = (): void => {
    this.pending = undefined;
    this.socket.uncork();
  };
}

/**
 * Runs one stream between a plain socket (TCP, or a UDP flow) and a framed tunnel connection. The tunnel is left
 * open and paused when the stream ends cleanly, so the caller can reuse it; on any error or idle
 * timeout both are destroyed.
 *
 * On the importing end, the OPEN and the early data are written first and the client's bytes flow
 * on without waiting for the reply; the first byte from the tunnel is the reply. A refusal, or a
 * tunnel that fails before replying, ends the attempt with `notOpened` and leaves the client open
 * for another cluster (after a refusal our direction is closed with a FIN, so the tunnel is
 * reusable).
 *
 * On the exporting end, `reply` (the "ok") waits briefly to leave with the backend's first bytes
 * or its end.
 */
export function bridge(
  plain: PlainSocket,
  tunnel: Duplex,
  idleTimeoutMs: number,
  end: StreamEnd,
): Promise<BridgeResult> {
  const opening = end.role === "importing" ? end.opening : undefined;
  return new Promise((resolve) => {
    const decoder = new FrameDecoder();
    const early = opening?.early;
    let fromPlain = early?.bytes ?? 0;
    let toPlain = 0;
    let sentFin = false;
    let gotFin = false;
    let plainWritable = true;
    let plainReadable = !early?.ended;
    let awaitingReply = opening !== undefined;
    // Until the lead (OPEN or reply) is out, the first bytes towards the tunnel can still join it.
    let lead: Buffer | undefined;
    let leadTimer: NodeJS.Timeout | undefined;
    const sendLead = (): void => {
      if (!lead) return;
      const bytes = lead;
      lead = undefined;
      clearTimeout(leadTimer);
      tunnel.write(bytes);
    };
    const holdLead = (bytes: Buffer): void => {
      lead = bytes;
      leadTimer = setTimeout(sendLead, LEAD_WAIT_MS);
    };
    // Bulk writes both ways are corked until the poll phase ends, so that what one event-loop
    // turn reads leaves in one write: towards the plain socket, the 16 KiB records one TLS read
    // decrypts go in one writev (a write per record cost a quarter of the exporting gateway's
    // time and a third of the pair's throughput). Small chunks (requests, replies) go at once:
    // the cork's deferred write added ~10 µs to every round trip; a small write while a cork is
    // pending still waits for it, so order is kept.
    const tunnelCork = new TurnCork(tunnel);
    const plainCork = new TurnCork(plain);
    let settled = false;
    let leftover: Buffer = Buffer.alloc(0);
    let replyTimer: NodeJS.Timeout | undefined;

    const cleanup = (): void => {
      clearTimeout(replyTimer);
      clearTimeout(leadTimer);
      tunnelCork.flush();
      plainCork.flush();
      lead = undefined; // ending before the lead went out: the stream failed, the tunnel is cut
      plain.off("data", onPlainData);
      plain.off("end", onPlainEnd);
      plain.off("finish", onPlainFinish);
      plain.off("error", onFailure);
      plain.off("close", onPlainClose);
      plain.off("timeout", onTimeout);
      plain.off("drain", onPlainDrain);
      tunnel.off("data", onTunnelData);
      tunnel.off("drain", onTunnelDrain);
      tunnel.off("error", onTunnelFailure);
      tunnel.off("close", onTunnelFailure);
      tunnel.off("end", onTunnelFailure);
      plain.setTimeout(0);
    };
    const settle = (result: Omit<BridgeResult, "fromPlain" | "toPlain" | "leftover">): void => {
      // Idle tunnels still need an error listener, or a later reset would crash the process.
      if (tunnel.listenerCount("error") === 0) tunnel.on("error", () => {});
      // A UDP flow's stream carries records (a length, then a datagram): what counts is what the flow moved.
      const counted =
        plain instanceof Socket
          ? { fromPlain, toPlain }
          : { fromPlain: plain.bytesRead, toPlain: plain.bytesWritten };
      resolve({ ...counted, leftover, ...result });
    };
    const finish = (clean: boolean): void => {
      if (settled) return;
      settled = true;
      cleanup();
      if (clean) {
        tunnel.pause();
        plain.destroy();
      } else {
        plain.destroy();
        tunnel.destroy();
      }
      settle({ clean, reusable: clean });
    };
    /** The attempt ends without a stream: the client stays for the next attempt. */
    const notOpened = (refused: ReplyStatusName | undefined): void => {
      if (settled) return;
      settled = true;
      cleanup();
      plain.pause();
      let reusable = false;
      if (refused && !tunnel.destroyed) {
        // Our direction must end with a FIN so the peer can skip to the next OPEN.
        if (!sentFin) tunnel.write(FIN_FRAME);
        tunnel.pause();
        reusable = true;
      } else tunnel.destroy();
      settle({ clean: false, reusable, notOpened: refused ? { refused } : {} });
    };
    const maybeDone = (): void => {
      if (sentFin && gotFin && !plainWritable && !plainReadable) finish(true);
    };
    function onFailure(): void {
      finish(false);
    }
    function onTunnelFailure(): void {
      if (awaitingReply) notOpened(undefined);
      else finish(false);
    }
    function onTimeout(): void {
      finish(false);
    }
    function onPlainData(chunk: Buffer): void {
      fromPlain += chunk.length;
      if (chunk.length >= BULK_CHUNK) tunnelCork.cork();
      if (lead) {
        tunnel.cork();
        sendLead();
        writeData(tunnel, chunk);
        tunnel.uncork();
      } else writeData(tunnel, chunk);
      let ok = tunnel.writableLength < WRITE_BUFFER_LIMIT;
      if (awaitingReply) {
        early!.chunks.push(chunk);
        early!.bytes += chunk.length;
        if (early!.bytes >= EARLY_DATA_LIMIT) ok = false; // resumed by the reply
      }
      if (!ok) plain.pause();
    }
    function onTunnelDrain(): void {
      if (!sentFin && !(awaitingReply && early!.bytes >= EARLY_DATA_LIMIT)) plain.resume();
    }
    function onPlainEnd(): void {
      plainReadable = false;
      sentFin = true;
      if (early && awaitingReply) early.ended = true;
      sendLead();
      tunnelCork.cork();
      tunnel.write(FIN_FRAME);
      maybeDone();
    }
    function onPlainFinish(): void {
      plainWritable = false;
      maybeDone();
    }
    function onPlainClose(): void {
      // Closed before both directions finished: the client or backend aborted.
      if (!(sentFin && gotFin)) finish(false);
    }
    function onPlainDrain(): void {
      if (!gotFin) tunnel.resume();
    }
    /** The peer's reply to our OPEN, at the head of `chunk`: what follows it, or undefined if the attempt ended. */
    function takeReply(chunk: Buffer): Buffer | undefined {
      if (lead) return void notOpened(undefined); // the peer spoke before our OPEN: broken
      if (chunk.length === 0) return chunk;
      const status = REPLY_NAMES[chunk[0]!];
      if (status !== "ok") {
        // A refusal is all the peer sends for this stream; anything else is a broken tunnel.
        return void notOpened(status && chunk.length === 1 ? status : undefined);
      }
      awaitingReply = false;
      clearTimeout(replyTimer);
      early!.chunks = [];
      early!.bytes = 0;
      early!.ended = false;
      opening!.onAccepted?.();
      if (!sentFin && tunnel.writableLength < WRITE_BUFFER_LIMIT) plain.resume();
      return chunk.subarray(1);
    }
    function onTunnelData(data: Buffer): void {
      const chunk = awaitingReply ? takeReply(data) : data;
      if (chunk === undefined || chunk.length === 0) return;
      for (const ev of decoder.push(chunk)) {
        if (ev.type === "error") return finish(false);
        if (ev.type === "data") {
          toPlain += ev.bytes.length;
          // The frame's size, not the piece's: a bulk frame's short tail (cut off by a TLS record's
          // end) would otherwise cost a write of its own.
          if (ev.frame >= BULK_CHUNK) plainCork.cork();
          plain.write(ev.bytes);
          if (plain.writableLength >= WRITE_BUFFER_LIMIT) tunnel.pause();
        } else {
          gotFin = true;
          leftover = ev.rest;
          tunnel.pause();
          plain.end();
        }
      }
    }

    /** What the stream starts with: the OPEN and early data, or the held reply and the bytes that came with the OPEN. */
    function begin(): void {
      if (opening) {
        // The OPEN, the replayed early data and (if the client is done) its FIN in one write.
        const { chunks, ended } = opening.early;
        if (chunks.length === 0 && !ended) {
          // A first attempt: the OPEN waits for the client's first bytes.
          holdLead(opening.open);
        } else {
          tunnel.cork();
          tunnel.write(opening.open);
          for (const c of chunks) writeData(tunnel, c);
          if (ended) {
            sentFin = true;
            tunnel.write(FIN_FRAME);
          }
          tunnel.uncork();
        }
        replyTimer = setTimeout(() => notOpened(undefined), opening.replyTimeoutMs);
      }
      if (end.role === "exporting") {
        if (end.reply) holdLead(end.reply);
        if (end.initial.length > 0) onTunnelData(end.initial);
      }
    }

    plain.on("data", onPlainData);
    plain.on("end", onPlainEnd);
    plain.on("finish", onPlainFinish);
    plain.on("error", onFailure);
    plain.on("close", onPlainClose);
    plain.on("drain", onPlainDrain);
    plain.setTimeout(idleTimeoutMs, onTimeout);
    tunnel.on("data", onTunnelData);
    tunnel.on("drain", onTunnelDrain);
    tunnel.on("error", onTunnelFailure);
    tunnel.on("close", onTunnelFailure);
    tunnel.on("end", onTunnelFailure);
    begin();
    if (settled) return;
    if (!gotFin) tunnel.resume();
    if (plainReadable && !(early && early.bytes >= EARLY_DATA_LIMIT)) plain.resume();
    else maybeDone();
  });
}

/**
 * Pipes two plain sockets both ways with `stream.pipeline` (its error handling destroys both on a
 * failure) and closes both once both directions have ended. `early`: bytes `a` sent to a peer
 * gateway that refused them, written to `b` first (and `a`'s end, if it came already).
 */
export function pipeBoth(
  a: PlainSocket,
  b: PlainSocket,
  idleTimeoutMs: number,
  early?: EarlyData,
): Promise<PumpResult> {
  return new Promise((resolve) => {
    let pending = 2;
    let clean = true;
    const done = (err?: Error | null): void => {
      if (err) {
        clean = false;
        a.destroy();
        b.destroy();
      }
      if (--pending === 0) {
        a.destroy();
        b.destroy();
        resolve({ fromPlain: a.bytesRead, toPlain: a.bytesWritten, clean });
      }
    };
    const onTimeout = (): void => {
      a.destroy(new Error("idle timeout"));
      b.destroy(new Error("idle timeout"));
    };
    a.setTimeout(idleTimeoutMs, onTimeout);
    b.setTimeout(idleTimeoutMs, onTimeout);
    for (const chunk of early?.chunks ?? []) b.write(chunk);
    if (early?.ended) {
      // `a` has ended already, so a pipeline from it would never end `b`.
      b.end();
      finished(b, { readable: false }, done);
    } else pipeline(a, b, done);
    pipeline(b, a, done);
  });
}

/** What a reader makes of the bytes so far: keep reading, or stop with a value. */
export type ReadStep<T> = { done: false } | { done: true; value: T };

/**
 * Feeds what `socket` receives (after `buffered`) to `take` until it is done, or the socket ends,
 * or `timeoutMs` passes: then `ended` says what to resolve with. Leaves the socket paused, without
 * the listeners it added.
 */
export function readFrom<T>(
  socket: Duplex,
  buffered: Buffer,
  timeoutMs: number,
  take: (chunk: Buffer) => ReadStep<T>,
  ended: (why: "closed" | "timeout") => T,
): Promise<T> {
  return new Promise((resolve) => {
    let settled = false;
    const done = (v: T): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.off("data", onData);
      socket.off("close", onClose);
      socket.off("end", onClose);
      socket.pause();
      resolve(v);
    };
    const onData = (chunk: Buffer): void => {
      const step = take(chunk);
      if (step.done) done(step.value);
    };
    const onClose = (): void => done(ended("closed"));
    const timer = setTimeout(() => done(ended("timeout")), timeoutMs);
    socket.on("data", onData);
    socket.once("close", onClose);
    socket.once("end", onClose);
    if (buffered.length > 0) onData(buffered);
    if (!settled) socket.resume();
  });
}

/**
 * Skips the frames of a refused stream up to its FIN (the client gateway sends one after any
 * refusal); resolves with the bytes after it (the next OPEN), or undefined on close, timeout or
 * garbage. Leaves the socket paused.
 */
export function skipStream(tunnel: Duplex, buffered: Buffer, timeoutMs: number): Promise<Buffer | undefined> {
  const decoder = new FrameDecoder();
  return readFrom<Buffer | undefined>(
    tunnel,
    buffered,
    timeoutMs,
    (chunk) => {
      for (const ev of decoder.push(chunk)) {
        if (ev.type === "error") return { done: true, value: undefined };
        if (ev.type === "fin") return { done: true, value: ev.rest };
      }
      return { done: false };
    },
    () => undefined,
  );
}
