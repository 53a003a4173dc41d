/**
 * The gateway-to-gateway wire protocol, inside mutual TLS. Pure codecs, no sockets.
 *
 * A TLS connection carries one stream at a time and is reused for the next one, so a warm,
 * authenticated connection costs no handshake (HTTP/1.1 keep-alive, not HTTP/2 multiplexing:
 * concurrent streams each get their own connection and TCP's own flow control).
 *
 *   client gateway                              server gateway
 *   OPEN  "MRDN" v2 kind port len name   ──▶   kind: 1 connect (TCP), 2 probe, 3 datagram (a UDP
 *                                              flow, its datagrams as records: datagram.ts)
 *         (v3: then len namespace)
 *   DATA ... [FIN]  (early: not waiting) ──▶
 *                                        ◀──   REPLY status(1)  (after the upstream is connected)
 *   DATA  0x00 len(u32) bytes            ◀─▶   DATA ...
 *   FIN   0x01 (this direction is done)  ◀─▶   FIN
 *   after both FINs the connection is idle and may carry the next OPEN.
 *
 * Version 2 (early data): the client gateway sends the client's bytes right behind the OPEN,
 * without waiting for the reply, and keeps a copy until the reply so that it can replay them to
 * another cluster if this one refuses. Its direction of a v2 stream always ends with a FIN, even
 * when refused: after a refusal the server gateway discards that stream's frames up to the FIN and
 * the connection carries the next OPEN. Version 1 OPENs (no early data, no FIN after a refusal)
 * are still served.
 *
 * Version 3 is version 2 plus the client's namespace, when the client gateway knows it (from the
 * client pod's address in its own cluster). The source cluster is never in the header: it is the
 * client certificate's identity, and the namespace is believed only as that cluster's gateway's
 * word about its own cluster. A v2 OPEN is still written when the namespace is unknown, so a
 * gateway that has not been upgraded yet keeps serving those.
 */

export const MAGIC = Buffer.from("MRDN", "ascii");

/** A stream carries a TCP connection or a UDP flow (datagram.ts); an SCTP port cannot cross a gateway. */
export const gatewayCarries = (protocol: string | undefined): boolean =>
  (protocol ?? "TCP") === "TCP" || protocol === "UDP";
export const VERSION = 2;
/** The version of an OPEN that names the client's namespace. */
export const VERSION_WITH_NAMESPACE = 3;
/** Versions a server gateway accepts: 1 (no early data), 2, and 3 (2 plus the source namespace). */
const VERSIONS = new Set([1, 2, 3]);

/**
 * `connect`: a TCP connection to the service port; `datagram`: a UDP flow to it, its datagrams
 * length-prefixed in the stream (datagram.ts); `probe`: a health check, no service.
 */
export type OpenKind = "connect" | "probe" | "datagram";
const KIND_CODES: Record<OpenKind, number> = { connect: 1, probe: 2, datagram: 3 };
const KINDS_BY_CODE: Record<number, OpenKind | undefined> = { 1: "connect", 2: "probe", 3: "datagram" };

export interface OpenRequest {
  kind: OpenKind;
  /** `namespace/name` of the multi-cluster service; empty for probes. */
  service: string;
  port: number;
  /**
   * The client's namespace in the client gateway's cluster, when that gateway knows it. Only
   * access control reads it, and only for namespace-scoped allow entries.
   */
  sourceNamespace?: string;
  /**
   * Wire version of a decoded OPEN (2 or 3 unless the peer is older); encodeOpen writes 3 when
   * there is a source namespace and 2 otherwise.
   */
  version?: number;
}

/** Reply codes; anything but `ok` ends the stream and tells the caller whether to try elsewhere. */
export const ReplyStatus = {
  ok: 0,
  accessDenied: 1,
  unknownService: 2,
  noEndpoints: 3,
  badRequest: 4,
  draining: 5,
  upstreamFailed: 6,
  overloaded: 7,
} as const;
export type ReplyStatusName = keyof typeof ReplyStatus;
export const REPLY_NAMES: Record<number, ReplyStatusName> = Object.fromEntries(
  Object.entries(ReplyStatus).map(([k, v]) => [v, k as ReplyStatusName]),
);

const LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const HEADER_FIXED = MAGIC.length + 1 + 1 + 2 + 1;
export const MAX_OPEN_LENGTH = HEADER_FIXED + 255 + 1 + 63;

/**
 * Keys already found valid. Every stream's OPEN names a service, on both gateways; a gateway serves
 * a handful of services, and splitting and matching each key anew was ~1% of its CPU per new
 * connection. Bounded, so a peer sending many distinct valid names cannot grow it without end.
 */
const validServiceKeys = new Set<string>();
const VALID_SERVICE_KEYS_KEPT = 4096;

/** `namespace/name`, each part a DNS label (Kubernetes Service and Namespace names are). */
export function isServiceKey(s: string): boolean {
  if (validServiceKeys.has(s)) return true;
  const parts = s.split("/");
  const valid = parts.length === 2 && LABEL.test(parts[0]!) && LABEL.test(parts[1]!);
  if (valid) {
    if (validServiceKeys.size >= VALID_SERVICE_KEYS_KEPT) validServiceKeys.clear();
    validServiceKeys.add(s);
  }
  return valid;
}

export function encodeOpen(req: OpenRequest): Buffer {
  if (req.kind !== "probe" && !isServiceKey(req.service)) throw new Error(`bad service key "${req.service}"`);
  if (!Number.isInteger(req.port) || req.port < 0 || req.port > 65535)
    throw new Error(`bad port ${req.port}`);
  const ns = req.sourceNamespace;
  if (ns !== undefined && !LABEL.test(ns)) throw new Error(`bad source namespace "${ns}"`);
  const name = Buffer.from(req.service, "ascii");
  const out = Buffer.alloc(HEADER_FIXED + name.length + (ns === undefined ? 0 : 1 + ns.length));
  MAGIC.copy(out, 0);
  out[4] = ns === undefined ? VERSION : VERSION_WITH_NAMESPACE;
  out[5] = KIND_CODES[req.kind];
  out.writeUInt16BE(req.port, 6);
  out[8] = name.length;
  name.copy(out, HEADER_FIXED);
  if (ns !== undefined) {
    out[HEADER_FIXED + name.length] = ns.length;
    out.write(ns, HEADER_FIXED + name.length + 1, "ascii");
  }
  return out;
}

export type DecodeResult<T> =
  | { state: "incomplete" }
  | { state: "error"; message: string }
  | { state: "done"; value: T; consumed: number };

/** `buf` is the magic, or as much of its start as has arrived. (Loops: this runs for every stream.) */
function startsLikeMagic(buf: Buffer): boolean {
  for (let i = 0; i < MAGIC.length && i < buf.length; i++) if (buf[i] !== MAGIC[i]) return false;
  return true;
}

function isVisibleAscii(buf: Buffer, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (buf[i]! < 0x21 || buf[i]! > 0x7e) return false;
  return true;
}

/** Decodes an OPEN from the start of `buf`; never throws, whatever the bytes. */
export function decodeOpen(buf: Buffer): DecodeResult<OpenRequest> {
  if (!startsLikeMagic(buf)) return { state: "error", message: "not a Meridian gateway stream" };
  if (buf.length < HEADER_FIXED) return { state: "incomplete" };
  if (!VERSIONS.has(buf[4]!)) return { state: "error", message: `unsupported version ${buf[4]}` };
  const kind = KINDS_BY_CODE[buf[5]!];
  if (!kind) return { state: "error", message: `unknown kind ${buf[5]}` };
  const version = buf[4]!;
  const port = buf.readUInt16BE(6);
  const length = buf[8]!;
  if (buf.length < HEADER_FIXED + length) return { state: "incomplete" };
  if (!isVisibleAscii(buf, HEADER_FIXED, HEADER_FIXED + length))
    return { state: "error", message: "non-ASCII service name" };
  const service = buf.toString("ascii", HEADER_FIXED, HEADER_FIXED + length);
  if (kind !== "probe" && (!isServiceKey(service) || port === 0))
    return { state: "error", message: `${kind} needs namespace/name and a port` };
  const request: OpenRequest = { kind, service, port, version };
  const consumed = HEADER_FIXED + length;
  if (version < VERSION_WITH_NAMESPACE) return { state: "done", value: request, consumed };
  const ns = decodeSourceNamespace(buf, consumed);
  if (ns.state !== "done") return ns;
  return {
    state: "done",
    value: { ...request, sourceNamespace: ns.value },
    consumed: consumed + ns.consumed,
  };
}

/** The length-prefixed source namespace that OPENs carry from VERSION_WITH_NAMESPACE on, at `offset`. */
function decodeSourceNamespace(buf: Buffer, offset: number): DecodeResult<string> {
  if (buf.length < offset + 1) return { state: "incomplete" };
  const nsLength = buf[offset]!;
  if (buf.length < offset + 1 + nsLength) return { state: "incomplete" };
  const ns = buf.toString("latin1", offset + 1, offset + 1 + nsLength);
  if (!LABEL.test(ns)) return { state: "error", message: "bad source namespace" };
  return { state: "done", value: ns, consumed: 1 + nsLength };
}

export const FrameType = { data: 0, fin: 1 } as const;
export const FRAME_HEADER = 5;
/** Larger chunks are split: bounds what a decoder must trust in one length field. */
export const MAX_FRAME_PAYLOAD = 1 << 20;

/** The 5-byte header of a DATA frame carrying `length` bytes (at most MAX_FRAME_PAYLOAD). */
export function dataHeader(length: number): Buffer {
  const out = Buffer.allocUnsafe(FRAME_HEADER);
  out[0] = FrameType.data;
  out.writeUInt32BE(length, 1);
  return out;
}

/**
 * Frames `chunk` as DATA (splitting above the maximum payload) in one buffer. Copies the payload:
 * the data path writes `dataHeader` and the payload corked instead (see tunnel.ts).
 */
export function encodeData(chunk: Buffer): Buffer {
  if (chunk.length <= MAX_FRAME_PAYLOAD) {
    const out = Buffer.allocUnsafe(FRAME_HEADER + chunk.length);
    out[0] = FrameType.data;
    out.writeUInt32BE(chunk.length, 1);
    chunk.copy(out, FRAME_HEADER);
    return out;
  }
  const parts: Buffer[] = [];
  for (let i = 0; i < chunk.length; i += MAX_FRAME_PAYLOAD)
    parts.push(encodeData(chunk.subarray(i, i + MAX_FRAME_PAYLOAD)));
  return Buffer.concat(parts);
}

export const FIN_FRAME = Buffer.from([FrameType.fin, 0, 0, 0, 0]);

export type FrameEvent =
  /** `frame`: the payload length of the DATA frame `bytes` are part of. */
  | { type: "data"; bytes: Buffer; frame: number }
  | { type: "fin"; rest: Buffer }
  | { type: "error"; message: string };

/**
 * Incremental frame decoder. Payloads are forwarded as slices of the input as they arrive, never
 * reassembled, so a 1 MiB frame costs no extra copy. After FIN, remaining bytes belong to the next
 * stream on the connection (a new OPEN) and are handed back in `rest`.
 */
export class FrameDecoder {
  private header = Buffer.alloc(FRAME_HEADER);
  private headerFill = 0;
  private remaining = 0;
  private frameLength = 0;
  private finished = false;

  get done(): boolean {
    return this.finished;
  }

  push(chunk: Buffer): FrameEvent[] {
    const events: FrameEvent[] = [];
    let offset = 0;
    while (offset < chunk.length) {
      if (this.finished) return [...events, { type: "error", message: "bytes after FIN before the reply" }];
      if (this.remaining > 0) {
        const take = Math.min(this.remaining, chunk.length - offset);
        events.push({ type: "data", bytes: chunk.subarray(offset, offset + take), frame: this.frameLength });
        this.remaining -= take;
        offset += take;
        continue;
      }
      const take = Math.min(FRAME_HEADER - this.headerFill, chunk.length - offset);
      chunk.copy(this.header, this.headerFill, offset, offset + take);
      this.headerFill += take;
      offset += take;
      if (this.headerFill < FRAME_HEADER) break;
      this.headerFill = 0;
      const type = this.header[0];
      const length = this.header.readUInt32BE(1);
      if (type === FrameType.fin) {
        if (length !== 0) return [...events, { type: "error", message: "FIN with a payload" }];
        this.finished = true;
        events.push({ type: "fin", rest: chunk.subarray(offset) });
        return events;
      }
      if (type !== FrameType.data)
        return [...events, { type: "error", message: `unknown frame type ${type}` }];
      if (length === 0 || length > MAX_FRAME_PAYLOAD)
        return [...events, { type: "error", message: `bad frame length ${length}` }];
      this.remaining = length;
      this.frameLength = length;
    }
    return events;
  }
}
