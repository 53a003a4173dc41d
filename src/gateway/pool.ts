/**
 * Connections to one peer gateway: dialing (mTLS with the shared SecureContext, TLS 1.3 session
 * tickets kept from the `session` event, the peer's identity checked against the cluster we meant
 * to reach) and a warm pool of idle authenticated connections with a TTL. A stream takes an idle
 * connection if there is one, so a new client connection usually costs no handshake at all; the
 * connection comes back to the pool when its stream ends cleanly.
 *
 * With `multiplex`, streams are instead channels over a few long-lived connections per peer
 * (src/gateway/mux.ts), negotiated by ALPN; a peer that does not answer with the multiplexing
 * protocol (an older gateway) gets one connection per stream as before.
 *
 * No TLS session resumption: on a resumed TLS 1.3 session Node 20 gives the client an empty peer
 * certificate (measured), so the peer's identity could not be checked again; with the pool,
 * full handshakes are rare anyway.
 */
import net from "node:net";
import type { Duplex } from "node:stream";
import tls from "node:tls";
import type { SecureContext, TLSSocket } from "node:tls";
import type { TallySum } from "../observability/tally.js";
import type { GatewayMetrics } from "./metrics.js";
import { leastLoaded, MUX_ALPN, MuxChannel, MuxConnection } from "./mux.js";
import type { PeerGateway } from "./routes.js";
import type { RefusalReason, TrustBundle } from "./trust.js";
import { classifyPeer, gatewayDnsName } from "./trust.js";

export interface PoolOptions {
  /** Idle connections kept ready per peer (default 4). */
  warm: number;
  /** Idle connections kept at most; extra returned ones are closed (default 512). */
  maxIdle: number;
  /** An idle connection older than this is closed (default 30 s; the server waits 60 s). */
  idleTtlMs: number;
  connectTimeoutMs: number;
  /** Handshakes in flight per peer (default 32); more wait their turn. */
  maxHandshakes?: number;
  /** Multiplexed connections kept per peer; 0 or absent: one connection per concurrent stream. */
  multiplex?: number;
}

export class PeerRefusedError extends Error {
  constructor(
    readonly reason: RefusalReason,
    detail: string,
  ) {
    super(`${reason}: ${detail}`);
  }
}

interface Idle {
  socket: TLSSocket;
  since: number;
  onGone: () => void;
}

export class PeerConnector {
  private readonly idle: Idle[] = [];
  private dialing = 0;
  private closed = false;
  /** Handshakes in progress and waiting, so a burst of new connections queues instead of timing out. */
  private handshaking = 0;
  private readonly handshakeQueue: Array<() => void> = [];
  private readonly muxed: MuxConnection[] = [];
  /** Multiplexed connections being dialed: a stream arriving while none is up waits for the first. */
  private readonly muxDials = new Set<Promise<MuxConnection | undefined>>();
  /** False once the peer answered without the multiplexing protocol (until the next flush). */
  private peerMultiplexes = true;

  /** This peer's per-stream counters, resolved once. */
  private readonly sums: { warm: TallySum; dialed: TallySum; channels: TallySum };
  private readonly channelClosed = (): void => {
    this.sums.channels.value--;
  };

  constructor(
    public peer: PeerGateway,
    private readonly context: () => { secureContext: SecureContext; bundle: TrustBundle },
    private readonly options: PoolOptions,
    private readonly metrics: GatewayMetrics,
    private readonly clock: () => number = Date.now,
    /** Whether the gateway's descriptor budget has room for one more idle connection. */
    private readonly roomForIdle: () => boolean = () => true,
  ) {
    const cluster = peer.clusterId;
    this.sums = {
      warm: metrics.poolReuse.sum({ cluster, kind: "warm" }),
      dialed: metrics.poolReuse.sum({ cluster, kind: "new" }),
      channels: metrics.muxChannels.sum({ cluster }),
    };
  }

  get idleCount(): number {
    return this.idle.length;
  }

  /** Streams go over multiplexed connections to this peer. */
  get multiplexing(): boolean {
    return (this.options.multiplex ?? 0) > 0 && this.peerMultiplexes;
  }

  /**
   * A tunnel ready for a stream: a channel on a multiplexed connection, or a connection of its
   * own, warm from the pool if possible.
   */
  async acquire(): Promise<{ socket: Duplex; warm: boolean }> {
    if (this.multiplexing) {
      const channel = await this.openChannel();
      if (channel) return channel;
    }
    const now = this.clock();
    while (this.idle.length > 0) {
      const entry = this.idle.pop()!;
      entry.socket.off("close", entry.onGone);
      entry.socket.off("data", entry.onGone);
      entry.socket.off("end", entry.onGone);
      // Paused until the stream reads its reply, so no byte is emitted with nobody listening.
      entry.socket.pause();
      const usable = !entry.socket.destroyed && !entry.socket.readableEnded && entry.socket.writable;
      if (!usable || now - entry.since > this.options.idleTtlMs) {
        entry.socket.destroy();
        continue;
      }
      this.sums.warm.value++;
      this.updateGauge();
      this.refill();
      return { socket: entry.socket, warm: true };
    }
    this.sums.dialed.value++;
    const socket = await this.dial();
    this.refill();
    return { socket, warm: false };
  }

  /**
   * Gives back a tunnel whose stream ended cleanly (a channel is released, a connection pooled).
   * `counted`: the gateway counted the connection's descriptor for its stream; one that carried
   * only a probe, or no stream at all, was not, and is kept only if the gateway has room for it.
   */
  release(tunnel: Duplex, counted = true): void {
    if (tunnel instanceof MuxChannel) return tunnel.release(this.options.idleTtlMs);
    const socket = tunnel as TLSSocket;
    if (socket.destroyed || socket.readableEnded || !(counted || this.roomForIdle()))
      return void socket.destroy();
    this.park(socket);
  }

  /**
   * Keeps a connection for a later stream. A stream's connection moves here from the stream's
   * count; connections the gateway never counted (warm dials, probes' connections) ask it for
   * room before they come here.
   */
  private park(socket: TLSSocket): void {
    if (this.closed || this.idle.length >= this.options.maxIdle) return void socket.destroy();
    // While idle the peer must stay silent; data, its end (a FIN: the peer is going away) or a
    // close means the connection is unusable. The socket flows while parked: a paused socket
    // would not notice a FIN, and a half-closed connection would be handed to the next stream.
    const entry: Idle = {
      socket,
      since: this.clock(),
      onGone: () => {
        const i = this.idle.indexOf(entry);
        if (i >= 0) this.idle.splice(i, 1);
        socket.destroy();
        this.updateGauge();
      },
    };
    socket.once("close", entry.onGone);
    socket.once("data", entry.onGone);
    socket.once("end", entry.onGone);
    socket.resume();
    this.idle.push(entry);
    this.updateGauge();
  }

  /** A channel on the least busy multiplexed connection, dialing one if none is up. */
  private async openChannel(): Promise<{ socket: MuxChannel; warm: boolean } | undefined> {
    let connection = leastLoaded(this.muxed);
    const warm = connection !== undefined;
    if (!connection) {
      if (this.muxDials.size === 0) this.startMuxDial();
      connection = (await Promise.race(this.muxDials)) ?? leastLoaded(this.muxed);
      if (!connection?.usable) return undefined;
    }
    (warm ? this.sums.warm : this.sums.dialed).value++;
    this.refill();
    // The stream's own OPEN is written within LEAD_WAIT_MS, and the channel's OPEN rides with it.
    const channel = connection.open(undefined, { deferOpen: true });
    this.sums.channels.value++;
    channel.once("close", this.channelClosed);
    return { socket: channel, warm };
  }

  private startMuxDial(): void {
    const dialing = this.dialMux();
    this.muxDials.add(dialing);
    // Failures reach the stream that waits for this dial; a background refill has none.
    dialing.catch(() => {}).finally(() => this.muxDials.delete(dialing));
  }

  /** Undefined when the peer does not multiplex: its connection then joins the idle pool. */
  private async dialMux(): Promise<MuxConnection | undefined> {
    const socket = await this.dial();
    if (socket.alpnProtocol !== MUX_ALPN) {
      this.peerMultiplexes = false;
      this.park(socket);
      return undefined;
    }
    const connection = new MuxConnection(socket);
    if (this.closed) {
      connection.retire();
      return undefined;
    }
    this.muxed.push(connection);
    socket.once("close", () => {
      const i = this.muxed.indexOf(connection);
      if (i >= 0) this.muxed.splice(i, 1);
      this.updateGauge();
    });
    this.updateGauge();
    return connection;
  }

  /** Dials until `warm` idle connections exist; failures are left to probes and real traffic. */
  refill(): void {
    if (this.multiplexing) {
      while (!this.closed && this.muxed.length + this.muxDials.size < this.options.multiplex!)
        this.startMuxDial();
      return;
    }
    while (!this.closed && this.idle.length + this.dialing < this.options.warm && this.roomForIdle()) {
      this.dialing++;
      this.dial()
        .then((s) => (this.roomForIdle() ? this.park(s) : s.destroy()))
        .catch(() => {})
        .finally(() => this.dialing--);
    }
  }

  /**
   * Closes idle connections past their TTL (called on the probe tick), and refreshes the gauges:
   * the multiplexed connections' windows move with every answer to their probes.
   */
  expire(): void {
    const now = this.clock();
    for (const entry of [...this.idle]) if (now - entry.since > this.options.idleTtlMs) entry.onGone();
    this.updateGauge();
  }

  /** Closes up to `n` idle connections, the oldest first, for their descriptors; returns how many closed. */
  closeIdle(n: number): number {
    const closing = this.idle.slice(0, n);
    for (const entry of closing) entry.onGone();
    return closing.length;
  }

  /**
   * Drops idle connections (rotation of our credentials, peer address change, shutdown, a warm
   * connection found dead); multiplexed ones take no new streams and close once their streams end.
   */
  flush(): void {
    for (const entry of [...this.idle]) entry.onGone();
    for (const connection of this.muxed.splice(0)) connection.retire();
    this.peerMultiplexes = true;
    this.updateGauge();
  }

  close(): void {
    this.closed = true;
    this.flush();
  }

  private updateGauge(): void {
    const cluster = { cluster: this.peer.clusterId };
    this.metrics.poolIdle.set(cluster, this.idle.length);
    this.metrics.muxConnections.set(cluster, this.muxed.length);
    let window = 0;
    for (const connection of this.muxed)
      if (Number.isFinite(connection.inFlightLimit)) window += connection.inFlightLimit;
    this.metrics.muxInFlightWindow.set(cluster, window);
  }

  /**
   * Opens and authenticates a new connection; rejects with `PeerRefusedError` on a bad peer. At most
   * `maxHandshakes` run at once: a burst of 2,000 new client connections would otherwise start
   * 2,000 handshakes, blow every connect timeout, and eject a healthy peer.
   */
  async dial(): Promise<TLSSocket> {
    if (this.handshaking >= (this.options.maxHandshakes ?? 32))
      await new Promise<void>((resolve) => this.handshakeQueue.push(resolve));
    this.handshaking++;
    try {
      return await this.handshake();
    } finally {
      this.handshaking--;
      this.handshakeQueue.shift()?.();
    }
  }

  private handshake(): Promise<TLSSocket> {
    const { secureContext, bundle } = this.context();
    return new Promise((resolve, reject) => {
      // Our own TCP socket, because setNoDelay on a TLSSocket does not reach the TCP handle: with
      // Nagle on, small frames (a reply byte, a FIN) waited for delayed ACKs, ~40 ms per stream.
      const raw = net.connect({
        host: this.peer.host,
        port: this.peer.port,
        noDelay: true,
        allowHalfOpen: true,
      });
      raw.setKeepAlive(true, 30_000);
      // allowHalfOpen is honoured by tls.connect (it reaches the TLSSocket) but missing from the types.
      const options: tls.ConnectionOptions & { allowHalfOpen: boolean } = {
        socket: raw,
        servername: gatewayDnsName(bundle.clusterset, this.peer.clusterId),
        secureContext,
        allowHalfOpen: true,
        ...((this.options.multiplex ?? 0) > 0 ? { ALPNProtocols: [MUX_ALPN] } : {}),
        // Verified below so that a bad peer is classified and counted, not just an error string.
        rejectUnauthorized: false,
      };
      const socket = tls.connect(options);
      raw.on("error", (err) => socket.destroy(err));
      const timer = setTimeout(
        () => socket.destroy(new Error(`connect to ${this.peer.clusterId} timed out`)),
        this.options.connectTimeoutMs,
      );
      const fail = (err: Error): void => {
        clearTimeout(timer);
        socket.destroy();
        reject(err);
      };
      socket.once("error", fail);
      socket.once("secureConnect", () => {
        clearTimeout(timer);
        socket.off("error", fail);
        socket.on("error", () => {});
        const resumed = socket.isSessionReused();
        const verdict = classifyPeer(
          {
            authorized: socket.authorized,
            authorizationError: socket.authorizationError,
            certificate: socket.getPeerCertificate(),
          },
          bundle,
          this.clock(),
        );
        let refusal: PeerRefusedError | undefined;
        if (!verdict.ok) refusal = new PeerRefusedError(verdict.reason, verdict.detail);
        else if (verdict.identity.clusterId !== this.peer.clusterId)
          refusal = new PeerRefusedError(
            "wrong-peer",
            `expected ${this.peer.clusterId}, got ${verdict.identity.clusterId}`,
          );
        this.metrics.handshakes.inc({
          role: "client",
          result: refusal ? refusal.reason : "ok",
          resumed: String(resumed),
        });
        if (refusal) {
          this.metrics.refusals.inc({ reason: refusal.reason, cluster: this.peer.clusterId, service: "" });
          return fail(refusal);
        }
        resolve(socket);
      });
    });
  }
}
