/**
 * Streams multiplexed over one mutually authenticated TLS connection between two gateways
 * (negotiated by ALPN, `MUX_ALPN`). Without it every concurrent stream holds a TLS connection of
 * its own, ~93 KiB of OpenSSL and Node buffers across its two ends; multiplexed, a stream is a
 * few objects, and what many streams write in one event-loop turn shares TLS writes (`send`).
 *
 * Frame: type (1 byte), channel id (4), payload length (4), payload.
 * - OPEN starts a channel (ids are odd, chosen by the side that dials), with an optional label
 *   (the gateway sends none: its own OPEN travels inside). The gateway defers it to the channel's
 *   first frame of another kind: a stream's first bytes usually come one or more event-loop turns
 *   after its channel was opened, and an OPEN sent alone cost a TLS record, a write and a read of
 *   its own per stream (a deferring opener must write soon, or the peer never hears of the
 *   channel: the gateway's own OPEN leaves within `LEAD_WAIT_MS`);
 * - DATA carries bytes;
 * - FIN ends the sender's direction (a stream-level half-close: the channel's readable ends);
 * - RELEASE says the sender is done with the channel without ending it as a byte stream (the
 *   gateway's own stream protocol inside has its own FINs); a channel both sides released is gone;
 * - CLOSE cuts the channel both ways (an error, a refusal to open, a timeout);
 * - WINDOW hands credit back: each channel may have `window` bytes in flight, and its receiver
 *   hands credit back once its reader has taken the bytes, so a slow reader stalls only its own
 *   channel. The receiver doubles a channel's window with each hand-back while its reader keeps
 *   up (up to `MAX_CHANNEL_WINDOW`): a bulk stream needs megabytes in flight (a fixed 256 KiB held
 *   a loopback iperf3 stream to half of HAProxy's rate; 4 MiB matched it), and a stalled reader's
 *   channel stays small, so what slow clients can make a gateway hold stays bounded;
 * - PROBE and ANSWER (channel 0, a 4-byte tag) bound the connection's bytes in flight: the
 *   receiver answers each probe as it reads it, and the sender keeps what the peer has not yet
 *   read within a window measured from the answers (`DeliveryWindow`), so bulk transfers cannot
 *   fill the kernel's send buffer ahead of every other channel's frames.
 */
import { Duplex } from "node:stream";
import { performance } from "node:perf_hooks";
import type { TLSSocket } from "node:tls";
import { DeliveryWindow, FIRST_ANSWER_WAIT_MS } from "./mux-window.js";

export const MUX_ALPN = "meridian-mux/1";
/**
 * Connections per peer `meridian gateway run` multiplexes over unless told otherwise: more than
 * one, so one lossy TCP connection does not hold up every stream to that peer.
 */
export const DEFAULT_MULTIPLEX_CONNECTIONS = 2;
export const MuxFrame = {
  open: 1,
  data: 2,
  fin: 3,
  release: 4,
  close: 5,
  window: 6,
  probe: 7,
  answer: 8,
} as const;
export type MuxFrameType = (typeof MuxFrame)[keyof typeof MuxFrame];
export const MUX_HEADER = 9;
export const INITIAL_CHANNEL_WINDOW = 256 * 1024;
export const MAX_CHANNEL_WINDOW = 8 * 2 ** 20;
/**
 * DATA bytes a connection lets wait in its socket's buffer before it waits for the socket to
 * drain. Channels' credit bounds what their peers hold, not what waits to be sent: without this
 * bound every channel writing to a slow link queues its whole window here (megabytes each), and
 * every other channel's frames wait behind all of it.
 */
export const MUX_WRITE_QUEUE = 64 * 1024;
/** The most one channel sends before the connection turns to the next channel with bytes to send. */
export const MUX_SLICE = 32 * 1024;
/** What is left of a write after a slice: sent with that slice when shorter than this. */
export const MUX_TAIL = 4 * 1024;

/** The label of a channel opened without one (shared: a written buffer is only read). */
const NO_LABEL = Buffer.alloc(0);

export function muxHeader(type: MuxFrameType, channel: number, length: number): Buffer {
  const header = Buffer.allocUnsafe(MUX_HEADER);
  header.writeUInt8(type, 0);
  header.writeUInt32BE(channel, 1);
  header.writeUInt32BE(length, 5);
  return header;
}

export type MuxFrameHandler = (type: number, channel: number, payload: Buffer) => void;

/**
 * Splits the bytes of a TLS connection into frames. DATA payloads are handed on piece by piece as
 * they arrive (a large frame is never held back for its last record); other frames whole.
 */
export class MuxFrameReader {
  private held: Buffer | undefined;
  /** The DATA frame being passed through: its channel and the bytes still to come. */
  private dataChannel = 0;
  private dataLeft = 0;

  constructor(private readonly onFrame: MuxFrameHandler) {}

  push(chunk: Buffer): void {
    const buf = this.held ? Buffer.concat([this.held, chunk]) : chunk;
    this.held = undefined;
    let at = 0;
    while (at < buf.length) {
      if (this.dataLeft > 0) {
        const take = Math.min(this.dataLeft, buf.length - at);
        this.dataLeft -= take;
        this.onFrame(MuxFrame.data, this.dataChannel, buf.subarray(at, at + take));
        at += take;
        continue;
      }
      if (buf.length - at < MUX_HEADER) break;
      const type = buf.readUInt8(at);
      const channel = buf.readUInt32BE(at + 1);
      const length = buf.readUInt32BE(at + 5);
      if (type === MuxFrame.data) {
        at += MUX_HEADER;
        this.dataChannel = channel;
        this.dataLeft = length;
        continue;
      }
      if (buf.length - at < MUX_HEADER + length) break;
      this.onFrame(type, channel, buf.subarray(at + MUX_HEADER, at + MUX_HEADER + length));
      at += MUX_HEADER + length;
    }
    if (at < buf.length) this.held = Buffer.from(buf.subarray(at));
  }
}

/** One stream on a multiplexed connection, as a Duplex. */
export class MuxChannel extends Duplex {
  /** Bytes this side may still send before the peer hands credit back. */
  private credit = INITIAL_CHANNEL_WINDOW;
  /** What this side lets the peer have in flight; grows while the reader keeps up. */
  private window = INITIAL_CHANNEL_WINDOW;
  /** Bytes received and taken by the reader, not yet handed back as credit. */
  private taken = 0;
  /** The write being sent: what is left of it, and its callback (called once all of it is sent). */
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private pendingCallback: ((err?: Error | null) => void) | undefined;
  private sentFin = false;
  private gotFin = false;
  private released = false;
  private peerReleased = false;
  private cutByPeer = false;
  private releaseTimer: NodeJS.Timeout | undefined;
  /** This side opened the channel and the peer has not been told yet: the label still to send. */
  private unannounced: Buffer | undefined;

  constructor(
    readonly connection: MuxConnection,
    readonly id: number,
    openingLabel?: Buffer,
  ) {
    super({ allowHalfOpen: true });
    this.unannounced = openingLabel;
  }

  /** Sends the OPEN, once, ahead of the channel's first other frame. */
  announce(): void {
    if (this.unannounced === undefined) return;
    const label = this.unannounced;
    this.unannounced = undefined;
    this.connection.send(muxHeader(MuxFrame.open, this.id, label.length), label);
  }

  /**
   * Done with the channel, cleanly (the stream inside has ended both ways): it is gone once the
   * peer says the same, or cut after `timeoutMs` if the peer never does.
   */
  release(timeoutMs = 60_000): void {
    if (this.destroyed || this.released) return;
    this.released = true;
    this.announce();
    this.connection.send(muxHeader(MuxFrame.release, this.id, 0));
    if (this.peerReleased) this.destroy();
    else {
      this.releaseTimer = setTimeout(() => this.destroy(), timeoutMs);
      this.releaseTimer.unref();
    }
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    this.sendOrWait([chunk], callback);
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, callback: (err?: Error | null) => void): void {
    this.sendOrWait(
      chunks.map((c) => c.chunk),
      callback,
    );
  }

  override _final(callback: (err?: Error | null) => void): void {
    this.sentFin = true;
    this.announce();
    this.connection.send(muxHeader(MuxFrame.fin, this.id, 0));
    callback();
  }

  override _read(): void {
    this.handBack();
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    clearTimeout(this.releaseTimer);
    this.connection.forget(this);
    const over = (this.sentFin && this.gotFin) || (this.released && this.peerReleased);
    // A channel the peer never heard of needs no CLOSE.
    if (this.unannounced === undefined && !this.cutByPeer && !over)
      this.connection.send(muxHeader(MuxFrame.close, this.id, 0));
    this.unannounced = undefined;
    this.pending = [];
    this.pendingBytes = 0;
    this.pendingCallback = undefined;
    callback(err);
  }

  /** A frame for this channel from the peer. */
  received(type: number, payload: Buffer): void {
    switch (type) {
      case MuxFrame.data:
        this.taken += payload.length;
        if (this.push(payload)) this.handBack();
        return;
      case MuxFrame.window:
        if (payload.length >= 4) this.credited(payload.readUInt32BE(0));
        return;
      case MuxFrame.fin:
        this.gotFin = true;
        this.push(null);
        return;
      case MuxFrame.release:
        this.peerReleased = true;
        if (this.released) this.destroy();
        return;
      case MuxFrame.close:
        this.cut();
        return;
      default:
    }
  }

  /** The peer or the connection is gone: no CLOSE goes back. */
  cut(): void {
    this.cutByPeer = true;
    this.destroy();
  }

  /** Has bytes to send and credit to send them with. */
  get sendable(): boolean {
    return this.pendingBytes > 0 && this.credit > 0 && !this.destroyed;
  }

  /**
   * Sends up to `max` bytes of the pending write as one DATA frame (the connection calls this in
   * turn with its other channels); the write's callback runs once the last of it is sent.
   */
  sendSlice(max: number): void {
    // A short tail rides with the slice before it rather than in a frame (and a TLS record) of its own.
    const n = Math.min(
      this.pendingBytes - max < MUX_TAIL ? this.pendingBytes : max,
      this.credit,
      this.pendingBytes,
    );
    if (n <= 0) return;
    const now: Buffer[] = [];
    for (let room = n; room > 0;) {
      const chunk = this.pending[0]!;
      if (chunk.length <= room) {
        now.push(chunk);
        this.pending.shift();
        room -= chunk.length;
      } else {
        now.push(chunk.subarray(0, room));
        this.pending[0] = chunk.subarray(room);
        room = 0;
      }
    }
    this.credit -= n;
    this.pendingBytes -= n;
    this.announce();
    this.connection.send(muxHeader(MuxFrame.data, this.id, n), ...now);
    if (this.pendingBytes === 0) {
      const callback = this.pendingCallback;
      this.pendingCallback = undefined;
      callback?.();
    }
  }

  private sendOrWait(chunks: Buffer[], callback: (err?: Error | null) => void): void {
    this.pending = chunks.filter((c) => c.length > 0);
    this.pendingBytes = 0;
    for (const c of this.pending) this.pendingBytes += c.length;
    if (this.pendingBytes === 0) {
      callback();
      return;
    }
    this.pendingCallback = callback;
    if (this.sendable) this.connection.schedule(this);
  }

  private credited(bytes: number): void {
    this.credit += bytes;
    if (this.sendable) this.connection.schedule(this);
  }

  /**
   * Called when the reader has taken bytes (a push below the mark, or a read asking for more).
   * Batches of a quarter window, so short streams never send a WINDOW frame.
   */
  private handBack(): void {
    if (this.taken < this.window / 4 || this.destroyed) return;
    let credit = this.taken;
    if (this.window < MAX_CHANNEL_WINDOW) {
      credit += this.window;
      this.window *= 2;
    }
    this.taken = 0;
    const grant = Buffer.allocUnsafe(4);
    grant.writeUInt32BE(credit, 0);
    this.connection.send(muxHeader(MuxFrame.window, this.id, 4), grant);
  }
}

/**
 * The usable connection for a new channel: one not backed up if there is one (a new stream placed
 * beside an upload to a slow peer waits behind its queue), then the one with the fewest channels.
 */
export function leastLoaded(connections: Iterable<MuxConnection>): MuxConnection | undefined {
  let best: MuxConnection | undefined;
  for (const c of connections) {
    if (!c.usable) continue;
    if (!best || (best.backedUp && !c.backedUp) || (best.backedUp === c.backedUp && c.load < best.load))
      best = c;
  }
  return best;
}

/**
 * One TLS connection carrying many channels. The dialing side opens channels (`open`); on the
 * accepting side each OPEN from the peer becomes a channel handed to `onChannel`.
 */
export class MuxConnection {
  private readonly channels = new Map<number, MuxChannel>();
  /** Channels with bytes to send and credit to send them, in turn order. */
  private readonly ready = new Set<MuxChannel>();
  private pumping = false;
  private awaitingDrain = false;
  /** Bytes written to the socket since the connection began. */
  private sent = 0;
  private readonly inFlight = new DeliveryWindow(performance.now());
  /** The peer has not yet read enough of what was sent: channels wait for a probe's answer. */
  private awaitingAnswer = false;
  private nextId = 1;
  /** A frame left this turn: later ones are corked until the turn ends. */
  private sentThisTurn = false;
  private corked = false;
  /** A pump run's frames, written as one: none sent yet, or whether they lead the turn or join its cork. */
  private batch: "none" | "unsent" | "alone" | "joined" = "none";
  private readonly reader = new MuxFrameReader((type, id, payload) => this.dispatch(type, id, payload));
  /** Closed once its last channel is gone (rotation: new streams go to a new connection). */
  private retired = false;

  constructor(
    readonly socket: TLSSocket,
    private readonly onChannel?: (channel: MuxChannel, label: Buffer) => void,
  ) {
    socket.on("data", (chunk: Buffer) => this.reader.push(chunk));
    socket.on("error", () => socket.destroy());
    const silence = setTimeout(() => {
      this.inFlight.peerSilent();
      this.reopen();
    }, FIRST_ANSWER_WAIT_MS);
    silence.unref();
    socket.on("close", () => {
      clearTimeout(silence);
      for (const channel of [...this.channels.values()]) channel.cut();
      this.channels.clear();
    });
    // Its answer, back before any bulk has queued, gives the path's own round trip (and says the peer answers).
    this.sendProbe();
  }

  /** Open channels. */
  get load(): number {
    return this.channels.size;
  }

  /**
   * Has more to send than it sends now: channels wait for the socket to drain, or for the peer to
   * answer a probe (its window is full).
   */
  get backedUp(): boolean {
    return this.awaitingDrain || this.awaitingAnswer;
  }

  /** Bytes the connection lets travel toward the peer before it has read them. */
  get inFlightLimit(): number {
    return this.inFlight.limit;
  }

  /** Takes new channels: open and not retired. */
  get usable(): boolean {
    return !this.retired && !this.socket.destroyed && this.socket.writable;
  }

  /** A new channel; `deferOpen`: the peer hears of it with its first frame, not now. */
  open(label: Buffer = NO_LABEL, { deferOpen = false } = {}): MuxChannel {
    const id = this.nextId;
    this.nextId += 2;
    const channel = new MuxChannel(this, id, label);
    this.channels.set(id, channel);
    if (!deferOpen) channel.announce();
    return channel;
  }

  /** No new channels; the connection closes when its last channel is gone (at once if idle). */
  retire(): void {
    this.retired = true;
    if (this.channels.size === 0) this.socket.destroy();
  }

  /**
   * The first frame of an event-loop turn leaves at once; frames after it in the same turn share
   * one write to the TLS socket (and so its records) at the turn's end. A round trip's frame is
   * usually the only one in its turn and is not held; a burst of streams still shares writes.
   * Inside a pump run (`batch`) the run's frames count as one: they share one write, so a bulk
   * stream's slices fill whole TLS records instead of each ending in a short one.
   */
  send(header: Buffer, ...payload: Buffer[]): void {
    if (this.socket.destroyed) return;
    if (this.batch === "none") {
      const alone = this.corkForWrite();
      this.write(header, payload);
      if (alone) this.socket.uncork();
      return;
    }
    if (this.batch === "unsent") this.batch = this.corkForWrite() ? "alone" : "joined";
    this.write(header, payload);
  }

  private write(header: Buffer, payload: Buffer[]): void {
    this.socket.write(header);
    this.sent += header.length;
    for (const p of payload)
      if (p.length > 0) {
        this.socket.write(p);
        this.sent += p.length;
      }
  }

  /**
   * Corks the socket for a write. True if the write is the turn's first, which the caller uncorks
   * as soon as it has written; otherwise it joins the cork held until the turn ends.
   */
  private corkForWrite(): boolean {
    if (!this.sentThisTurn) {
      this.sentThisTurn = true;
      setImmediate(this.endTurn);
      this.socket.cork();
      return true;
    }
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
    }
    return false;
  }

  private readonly endTurn = (): void => {
    this.sentThisTurn = false;
    if (!this.corked) return;
    this.corked = false;
    this.socket.uncork();
  };

  /** The channel has bytes to send: they go out in turn with other channels' as the socket drains. */
  schedule(channel: MuxChannel): void {
    this.ready.add(channel);
    this.pump();
  }

  forget(channel: MuxChannel): void {
    this.channels.delete(channel.id);
    this.ready.delete(channel);
    if (this.retired && this.channels.size === 0) this.socket.destroy();
  }

  /**
   * Hands ready channels a slice each in turn while the socket's buffer is short, then waits for
   * it to drain: a channel's frames wait behind at most the queue and one slice of each other
   * channel's, not behind everything the others have credit for.
   */
  private pump(): void {
    if (this.pumping || this.awaitingDrain || this.awaitingAnswer) return;
    this.pumping = true;
    this.batch = "unsent";
    try {
      while (this.ready.size > 0 && !this.socket.destroyed) {
        if (this.socket.writableLength >= MUX_WRITE_QUEUE) {
          this.awaitDrain();
          return;
        }
        if (this.inFlight.full(this.sent)) {
          this.awaitingAnswer = true;
          return;
        }
        const [channel] = this.ready as Iterable<MuxChannel>;
        this.ready.delete(channel!);
        channel!.sendSlice(MUX_SLICE);
        if (channel!.sendable) this.ready.add(channel!);
        if (this.inFlight.probeDue(this.sent)) this.sendProbe();
      }
    } finally {
      if (this.inFlight.probeDue(this.sent)) this.sendProbe();
      this.endBatch();
      this.pumping = false;
    }
  }

  /** A probe after what the connection has sent so far (riding in the pump run's write). */
  private sendProbe(): void {
    const tag = this.inFlight.probe(this.sent + MUX_HEADER + 4, performance.now());
    const payload = Buffer.allocUnsafe(4);
    payload.writeUInt32BE(tag, 0);
    this.send(muxHeader(MuxFrame.probe, 0, 4), payload);
  }

  /** A frame on channel 0, the connection's own. */
  private connectionFrame(type: number, payload: Buffer): void {
    if (payload.length !== 4) return;
    if (type === MuxFrame.probe) this.send(muxHeader(MuxFrame.answer, 0, 4), payload);
    else if (type === MuxFrame.answer && this.inFlight.answer(payload.readUInt32BE(0), performance.now()))
      this.reopen();
  }

  /** The window may have room again: channels waiting for it go on. */
  private reopen(): void {
    if (!this.awaitingAnswer || this.inFlight.full(this.sent)) return;
    this.awaitingAnswer = false;
    this.pump();
  }

  /** Sends what a pump run wrote, unless it joined the turn's cork. */
  private endBatch(): void {
    if (this.batch === "alone") this.socket.uncork();
    this.batch = "none";
  }

  private awaitDrain(): void {
    this.awaitingDrain = true;
    const resume = (): void => {
      this.awaitingDrain = false;
      this.pump();
    };
    // A socket whose own high-water mark is above the queue's never asks for a drain: look again next turn.
    if (this.socket.writableNeedDrain) this.socket.once("drain", resume);
    else setImmediate(resume);
  }

  private dispatch(type: number, id: number, payload: Buffer): void {
    if (id === 0) {
      this.connectionFrame(type, payload);
      return;
    }
    if (type === MuxFrame.open) {
      if (!this.onChannel || this.channels.has(id)) {
        this.send(muxHeader(MuxFrame.close, id, 0));
        return;
      }
      const channel = new MuxChannel(this, id);
      this.channels.set(id, channel);
      this.onChannel(channel, payload);
      return;
    }
    // Frames for a channel already gone (crossed a CLOSE) are dropped.
    this.channels.get(id)?.received(type, payload);
  }
}
