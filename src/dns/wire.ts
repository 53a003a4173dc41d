/**
 * Request bytes → response bytes for the `clusterset.local` server, independent of sockets.
 *
 * Policy (RFC 1035, RFC 6891, RFC 7766):
 * - unparseable → FORMERR when the ID is readable, else nothing; responses (QR=1) are never answered;
 * - opcode other than QUERY → NOTIMP; QDCOUNT ≠ 1 → FORMERR; class other than IN → REFUSED;
 * - EDNS version > 0 → BADVERS; an OPT in the query gets an OPT back echoing the client's buffer size
 *   and DO bit (as CoreDNS does);
 * - names outside the zone → REFUSED, or handed to an optional {@link DnsForwarder};
 * - UDP size limit: the client's EDNS payload size, at least 512 and at most maxUdpPayload (default:
 *   the largest datagram, as CoreDNS has no cap); 512 without OPT; TCP: 65535. A response over the
 *   limit keeps as many whole records as fit, in order, answer then authority then additional (as
 *   CoreDNS's miekg/dns Truncate) and has TC set, so the client retries over TCP.
 */
import { encodeHeaderOnly, encodeResponse, EncodeError, MAX_MESSAGE_SIZE, parseQuery } from "./codec.js";
import type { ParsedQuery, ResponseOpt } from "./codec.js";
import { CLASS_IN, Rcode } from "./records.js";
import type { DnsRecord, Question, Resolution } from "./records.js";
import { DEFAULT_RESOLVE_OPTIONS, isInZone, resolve } from "./resolve.js";
import type { ResolveOptions } from "./resolve.js";
import type { ZoneView } from "./zone.js";

/** Which transport a message came over; decides the response size limit. */
export type Transport = "udp" | "tcp";

/**
 * Receives queries for names outside the zone instead of answering REFUSED. Not implemented by
 * Meridian yet; the interface fixes where one plugs in. The forwarder owns the whole exchange: it must
 * return a response with the query's ID that fits the transport (or null to send nothing).
 */
export interface DnsForwarder {
  forward(request: Buffer, question: Question, transport: Transport): Promise<Buffer | null>;
}

/** Settings of {@link handleDnsMessage}. */
export interface DnsHandlerOptions {
  readonly zone: ZoneView;
  /** Defaults to {@link DEFAULT_RESOLVE_OPTIONS}. */
  readonly resolve?: ResolveOptions;
  /** Largest UDP response we send whatever the client advertises; clamped to [512, 65507]. Default 65507. */
  readonly maxUdpPayload?: number;
  readonly forwarder?: DnsForwarder;
}

/** Filled in by {@link handleDnsMessage} for metrics; -1 where unknown (e.g. dropped garbage). */
export interface QueryInfo {
  qtype: number;
  rcode: number;
  truncated: boolean;
  forwarded: boolean;
}

/** A response to send, null for none, or a promise of either (only when forwarding). */
export type DnsReply = Buffer | null | Promise<Buffer | null>;

/** Smallest UDP payload every DNS implementation must accept (RFC 1035). */
export const MIN_UDP_PAYLOAD = 512;
/** Largest payload of one UDP/IPv4 datagram. */
const MAX_UDP_DATAGRAM = 65507;
/** Default {@link DnsHandlerOptions.maxUdpPayload}: no cap below the datagram limit, like CoreDNS. */
export const DEFAULT_MAX_UDP_PAYLOAD = MAX_UDP_DATAGRAM;

const NONE: readonly DnsRecord[] = [];
/** Written to when the caller does not ask for QueryInfo (avoids an allocation per query). */
const unobserved: QueryInfo = { qtype: -1, rcode: -1, truncated: false, forwarded: false };

/**
 * Answers one DNS message. Never throws; garbage yields FORMERR or null. The result is synchronous
 * except when a forwarder takes an out-of-zone question.
 */
export function handleDnsMessage(
  request: Buffer,
  transport: Transport,
  options: DnsHandlerOptions,
  info: QueryInfo = unobserved,
): DnsReply {
  info.qtype = -1;
  info.rcode = -1;
  info.truncated = false;
  info.forwarded = false;
  try {
    return answerMessage(request, transport, options, info);
  } catch {
    // Unreachable by design (every step is bounds-checked or caught); a last resort so one odd
    // packet can never take the server down.
    info.rcode = Rcode.SERVFAIL;
    return request.length >= 2 ? encodeHeaderOnly(request.readUInt16BE(0), 0, Rcode.SERVFAIL) : null;
  }
}

function answerMessage(
  request: Buffer,
  transport: Transport,
  options: DnsHandlerOptions,
  info: QueryInfo,
): DnsReply {
  const parsed = parseQuery(request);
  if (parsed === null) return null;
  if (!parsed.ok) {
    info.rcode = parsed.rcode;
    return encodeHeaderOnly(parsed.id, parsed.flags, parsed.rcode);
  }
  const query = parsed.query;
  info.qtype = query.type;
  const maxUdp = clamp(options.maxUdpPayload ?? DEFAULT_MAX_UDP_PAYLOAD, MIN_UDP_PAYLOAD, MAX_UDP_DATAGRAM);
  const limit = sizeLimit(query, transport, maxUdp);
  const opt: ResponseOpt | undefined = query.edns && {
    udpPayloadSize: query.edns.udpPayloadSize,
    dnssecOk: query.edns.dnssecOk,
  };
  const reply = (resolution: Resolution): Buffer => encode(request, query, resolution, opt, limit, info);

  if (query.edns && query.edns.version !== 0) {
    // CoreDNS's BADVERS carries a fresh OPT with no payload size; answer the same.
    return encode(request, query, status(Rcode.BADVERS), { udpPayloadSize: 0, dnssecOk: false }, limit, info);
  }
  if (query.qclass !== CLASS_IN) return reply(status(Rcode.REFUSED));
  const resolveOptions = options.resolve ?? DEFAULT_RESOLVE_OPTIONS;
  const question: Question = { name: query.name, type: query.type };
  if (options.forwarder && !isInZone(query.name, resolveOptions.zone)) {
    info.forwarded = true;
    return options.forwarder.forward(request, question, transport).catch(() => reply(status(Rcode.SERVFAIL)));
  }
  let resolution: Resolution;
  try {
    resolution = resolve(options.zone, question, resolveOptions);
  } catch {
    resolution = status(Rcode.SERVFAIL);
  }
  return reply(resolution);
}

/** TCP: 65535. UDP: the client's EDNS size within [512, maxUdp], or 512 without EDNS. */
function sizeLimit(query: ParsedQuery, transport: Transport, maxUdp: number): number {
  if (transport === "tcp") return MAX_MESSAGE_SIZE;
  return query.edns ? clamp(query.edns.udpPayloadSize, MIN_UDP_PAYLOAD, maxUdp) : MIN_UDP_PAYLOAD;
}

function encode(
  request: Buffer,
  query: ParsedQuery,
  resolution: Resolution,
  opt: ResponseOpt | undefined,
  limit: number,
  info: QueryInfo,
): Buffer {
  let rcode = resolution.rcode;
  let encoded;
  try {
    encoded = encodeResponse(request, query, resolution, opt, limit);
  } catch (error) {
    // EncodeError: a record name that cannot go on the wire; RangeError: a field out of range in
    // data the API server should have validated. Either way the client gets SERVFAIL, not silence.
    if (!(error instanceof EncodeError) && !(error instanceof RangeError)) throw error;
    rcode = Rcode.SERVFAIL;
    encoded = encodeResponse(request, query, status(rcode), opt, limit);
  }
  info.rcode = rcode;
  info.truncated = encoded.truncated;
  return encoded.bytes;
}

function status(rcode: number): Resolution {
  return { rcode, aa: false, answers: NONE, authority: NONE, additional: NONE };
}

function clamp(value: number, min: number, max: number): number {
  return value < min ? min : value > max ? max : value;
}
