/**
 * Byte pumps. Both keep TCP half-close intact (sockets must be created with `allowHalfOpen`):
 * when one side ends its writes, the other side's write end is closed and the reverse direction
 * keeps flowing until it ends too. Backpressure: a side whose destination buffer is full is paused
 * until it drains, so memory per connection stays bounded whatever the speed mismatch.
 */
import type { Socket } from "node:net";
import { pipeline } from "node:stream";
import type { TLSSocket } from "node:tls";
import { encodeData, FIN_FRAME, FrameDecoder } from "./protocol.js";

export interface PumpResult {
  /** Bytes read from the plain socket (client or backend) and forwarded. */
  fromPlain: number;
  /** Bytes written to the plain socket. */
  toPlain: number;
  /** Both directions ended cleanly (FIN both ways); otherwise something was cut. */
  clean: boolean;
}

export interface BridgeResult extends PumpResult {
  /** The tunnel can carry another stream (only when clean). */
  reusable: boolean;
  /** Bytes read from the tunnel after the stream ended: the start of the next stream. */
  leftover: Buffer;
}

/**
 * Runs one stream between a plain TCP socket and a framed tunnel connection. The tunnel is left
 * open and paused when the stream ends cleanly, so the caller can reuse it; on any error or idle
 * timeout both are destroyed.
 */
export function bridge(
  plain: Socket,
  tunnel: TLSSocket,
  initial: Buffer,
  idleTimeoutMs: number,
): Promise<BridgeResult> {
  return new Promise((resolve) => {
    const decoder = new FrameDecoder();
    let fromPlain = 0;
    let toPlain = 0;
    let sentFin = false;
    let gotFin = false;
    let plainWritable = true;
    let plainReadable = true;
    let settled = false;
    let leftover: Buffer = Buffer.alloc(0);

    const cleanup = (): void => {
      plain.off("data", onPlainData);
      plain.off("end", onPlainEnd);
      plain.off("finish", onPlainFinish);
      plain.off("error", onFailure);
      plain.off("close", onPlainClose);
      plain.off("timeout", onTimeout);
      plain.off("drain", onPlainDrain);
      tunnel.off("data", onTunnelData);
      tunnel.off("drain", onTunnelDrain);
      tunnel.off("error", onFailure);
      tunnel.off("close", onFailure);
      tunnel.off("end", onFailure);
      plain.setTimeout(0);
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
      // Idle tunnels still need an error listener, or a later reset would crash the process.
      if (tunnel.listenerCount("error") === 0) tunnel.on("error", () => {});
      resolve({ fromPlain, toPlain, clean, reusable: clean, leftover });
    };
    const maybeDone = (): void => {
      if (sentFin && gotFin && !plainWritable && !plainReadable) finish(true);
    };
    function onFailure(): void {
      finish(false);
    }
    function onTimeout(): void {
      finish(false);
    }
    function onPlainData(chunk: Buffer): void {
      fromPlain += chunk.length;
      if (!tunnel.write(encodeData(chunk))) plain.pause();
    }
    function onTunnelDrain(): void {
      if (!sentFin) plain.resume();
    }
    function onPlainEnd(): void {
      plainReadable = false;
      sentFin = true;
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
    function onTunnelData(chunk: Buffer): void {
      for (const ev of decoder.push(chunk)) {
        if (ev.type === "error") return finish(false);
        if (ev.type === "data") {
          toPlain += ev.bytes.length;
          if (!plain.write(ev.bytes)) tunnel.pause();
        } else {
          gotFin = true;
          leftover = ev.rest;
          tunnel.pause();
          plain.end();
        }
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
    tunnel.on("error", onFailure);
    tunnel.on("close", onFailure);
    tunnel.on("end", onFailure);
    if (initial.length > 0) onTunnelData(initial);
    if (!gotFin) tunnel.resume();
    plain.resume();
  });
}

/**
 * Pipes two plain sockets both ways with `stream.pipeline` (its error handling destroys both on a
 * failure) and closes both once both directions have ended.
 */
export function pipeBoth(a: Socket, b: Socket, idleTimeoutMs: number): Promise<PumpResult> {
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
    pipeline(a, b, done);
    pipeline(b, a, done);
  });
}
