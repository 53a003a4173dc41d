/**
 * DNS message codec for the server: a strict parser for queries and an encoder for our responses.
 *
 * Why not `dns-packet` on this path (it is used by the tests as an independent oracle):
 * - its name decoder turns label bytes into UTF-8 text, so bytes ≥ 0x80 become U+FFFD (the echoed
 *   question then has different bytes and, at 3 bytes per character, label lengths over 63 that
 *   corrupt the packet), and a `.` byte inside a label is indistinguishable from a separator;
 * - its encoder never compresses names, so answers are 2–3× larger than CoreDNS's and truncate
 *   sooner over UDP;
 * - a query needs only the header, one question and the OPT record.
 *
 * Safety by construction: the question name must not use compression pointers (clients never send
 * them), and names of other records in a query are skipped without following pointers, so pointer
 * loops cannot be reached. Every read is bounds-checked; names are limited to 255 octets.
 */
import { CLASS_IN, RRType } from "./records.js";
import type { DnsRecord, Resolution } from "./records.js";

/** EDNS(0) data from a query's OPT record. */
export interface EdnsInfo {
  /** Requestor's UDP payload size, as sent (may be below 512; callers clamp). */
  readonly udpPayloadSize: number;
  readonly version: number;
  readonly dnssecOk: boolean;
}

/** A well-formed standard query. */
export interface ParsedQuery {
  readonly id: number;
  /** The query's header flags word, for copying RD/CD. */
  readonly flags: number;
  /**
   * Question name in presentation form without the final dot, case preserved (`.` for the root).
   * Bytes other than printable ASCII, `.` and `\` inside labels are escaped (`\DDD`, `\.`, `\\`).
   */
  readonly name: string;
  /** True when no label needed escaping; then name offsets map 1:1 onto the question's bytes. */
  readonly plainName: boolean;
  readonly type: number;
  readonly qclass: number;
  /** The question section is `message[12, questionEnd)`; responses copy it byte for byte. */
  readonly questionEnd: number;
  readonly edns: EdnsInfo | undefined;
}

/** Result of {@link parseQuery}: a query, a header-only error to send, or null (send nothing). */
export type ParseResult =
  | { readonly ok: true; readonly query: ParsedQuery }
  | { readonly ok: false; readonly id: number; readonly flags: number; readonly rcode: number };

/** Raised when a record cannot be put on the wire (bad name); the caller answers SERVFAIL. */
export class EncodeError extends Error {
  override readonly name = "EncodeError";
}

const HEADER_SIZE = 12;
const FLAG_QR = 0x8000;
const FLAG_AA = 0x0400;
const FLAG_TC = 0x0200;
const FLAG_RD = 0x0100;
const FLAG_CD = 0x0010;
const OPCODE_MASK = 0x7800;
const MAX_WIRE_NAME = 255;
const MAX_LABEL = 63;
const MAX_NAME_TEXT = 253;
const DOT = 0x2e;
const BACKSLASH = 0x5c;
/** Largest DNS message (TCP length prefix); also the encoder's hard stop. */
export const MAX_MESSAGE_SIZE = 65535;
/** Upper bound of one encoded record: owner (255) + fixed (10) + SOA rdata (2 × 255 + 20). */
const MAX_RECORD_SIZE = 800;
const FORMERR = 1;
/** Root owner (1) + type, class, TTL, rdlength (10). */
const OPT_LENGTH = 11;
const NOTIMP = 4;

/** Scratch space reused by every call; safe because encoding is synchronous. */
const scratch = Buffer.alloc(MAX_MESSAGE_SIZE + 2 * MAX_RECORD_SIZE);
const nameScratch = Buffer.alloc(MAX_WIRE_NAME);

/**
 * Parses a query. Returns null when nothing should be sent back: fewer than 2 bytes (no ID to
 * answer with) or the QR bit set (never answer a response — that is how reflection loops start).
 */
export function parseQuery(message: Buffer): ParseResult | null {
  if (message.length < 2) return null;
  const id = message.readUInt16BE(0);
  if (message.length >= 3 && (message[2]! & 0x80) !== 0) return null;
  if (message.length < HEADER_SIZE) {
    return { ok: false, id, flags: message.length >= 4 ? message.readUInt16BE(2) : 0, rcode: FORMERR };
  }
  const flags = message.readUInt16BE(2);
  if ((flags & OPCODE_MASK) !== 0) return { ok: false, id, flags, rcode: NOTIMP };
  const formErr = { ok: false, id, flags, rcode: FORMERR } as const;
  if (message.readUInt16BE(4) !== 1) return formErr;
  const question = readQuestionName(message);
  if (!question || question.end + 4 > message.length) return formErr;
  const type = message.readUInt16BE(question.end);
  const qclass = message.readUInt16BE(question.end + 2);
  let offset = question.end + 4;
  const otherRecords = message.readUInt16BE(6) + message.readUInt16BE(8);
  for (let i = 0; i < otherRecords && offset >= 0; i++) offset = skipRecord(message, offset);
  if (offset < 0) return formErr;
  const edns = readAdditional(message, offset, message.readUInt16BE(10));
  if (edns === null) return formErr;
  return {
    ok: true,
    query: {
      id,
      flags,
      name: question.name,
      plainName: question.plain,
      type,
      qclass,
      questionEnd: question.end + 4,
      edns,
    },
  };
}

interface QuestionName {
  readonly name: string;
  readonly plain: boolean;
  /** Offset just after the name's terminating zero byte. */
  readonly end: number;
}

function readQuestionName(message: Buffer): QuestionName | undefined {
  let offset = HEADER_SIZE;
  let textLength = 0;
  let wireLength = 1;
  let plain = true;
  for (;;) {
    if (offset >= message.length) return undefined;
    const length = message[offset]!;
    if (length === 0) break;
    // Compression pointers (0xC0) and the reserved label types are not accepted in a question.
    if (length > MAX_LABEL) return undefined;
    wireLength += length + 1;
    if (wireLength > MAX_WIRE_NAME || offset + 1 + length > message.length) return undefined;
    if (textLength > 0) nameScratch[textLength++] = DOT;
    for (let i = offset + 1; i <= offset + length; i++) {
      const byte = message[i]!;
      if (byte <= 0x20 || byte >= 0x7f || byte === DOT || byte === BACKSLASH) plain = false;
      nameScratch[textLength++] = byte;
    }
    offset += length + 1;
  }
  const end = offset + 1;
  if (textLength === 0) return { name: ".", plain: true, end };
  const name = plain ? nameScratch.toString("latin1", 0, textLength) : escapedName(message);
  return { name, plain, end };
}

/** Slow path for names with unusual bytes: presentation-format escapes, one label at a time. */
function escapedName(message: Buffer): string {
  const labels: string[] = [];
  let offset = HEADER_SIZE;
  for (let length = message[offset]!; length !== 0; length = message[offset]!) {
    let label = "";
    for (let i = offset + 1; i <= offset + length; i++) {
      const byte = message[i]!;
      if (byte === DOT || byte === BACKSLASH) label += `\\${String.fromCharCode(byte)}`;
      else if (byte <= 0x20 || byte >= 0x7f) label += `\\${byte.toString().padStart(3, "0")}`;
      else label += String.fromCharCode(byte);
    }
    labels.push(label);
    offset += length + 1;
  }
  return labels.join(".");
}

/** Skips a name without following pointers; returns the offset after it, or -1 if malformed. */
function skipName(message: Buffer, start: number): number {
  let offset = start;
  for (let wireLength = 1; ;) {
    if (offset >= message.length) return -1;
    const length = message[offset]!;
    if (length === 0) return offset + 1;
    if ((length & 0xc0) === 0xc0) return offset + 2 <= message.length ? offset + 2 : -1;
    if (length > MAX_LABEL) return -1;
    wireLength += length + 1;
    if (wireLength > MAX_WIRE_NAME) return -1;
    offset += length + 1;
  }
}

/** Skips one resource record; returns the offset after it, or -1 if malformed. */
function skipRecord(message: Buffer, start: number): number {
  const nameEnd = skipName(message, start);
  if (nameEnd < 0 || nameEnd + 10 > message.length) return -1;
  const end = nameEnd + 10 + message.readUInt16BE(nameEnd + 8);
  return end <= message.length ? end : -1;
}

/**
 * Walks the additional section looking for OPT. Returns undefined without OPT, null when the section
 * is malformed or has a second OPT or an OPT not owned by the root (RFC 6891 §6.1.1: FORMERR).
 */
function readAdditional(message: Buffer, start: number, count: number): EdnsInfo | undefined | null {
  let offset = start;
  let edns: EdnsInfo | undefined;
  for (let i = 0; i < count; i++) {
    const nameEnd = skipName(message, offset);
    if (nameEnd < 0 || nameEnd + 10 > message.length) return null;
    const end = nameEnd + 10 + message.readUInt16BE(nameEnd + 8);
    if (end > message.length) return null;
    if (message.readUInt16BE(nameEnd) === RRType.OPT) {
      if (edns || nameEnd !== offset + 1) return null;
      edns = {
        udpPayloadSize: message.readUInt16BE(nameEnd + 2),
        version: message[nameEnd + 5]!,
        dnssecOk: (message.readUInt16BE(nameEnd + 6) & 0x8000) !== 0,
      };
    }
    offset = end;
  }
  return edns;
}

/** The OPT record we send back. */
export interface ResponseOpt {
  readonly udpPayloadSize: number;
  readonly dnssecOk: boolean;
}

/** An encoded response and whether it had to be truncated. */
export interface EncodedResponse {
  readonly bytes: Buffer;
  readonly truncated: boolean;
}

/*
 * State of one encoding pass. Module-level because encoding is synchronous and never re-entered,
 * which lets the hot path run without per-message allocations other than the result.
 */
let writeOffset = 0;
let overflowed = false;
/** The question name when it can be pointed into (plain text offsets = wire offsets − 12). */
let questionName: string | undefined;
/** Whole names written so far (name → offset); created on first use. */
let compression: Map<string, number> | undefined;
/** Offset just past each record written, in order, to truncate at a record boundary. */
const recordEnds: number[] = [];

/**
 * Encodes a response with name compression (owner names, NS/SOA names; SRV targets are written in
 * full as RFC 2782 requires, but later names may point at them). `resolution.rcode` may be an
 * extended rcode (BADVERS): its upper bits go into the OPT record, so that needs `opt`. If the result
 * exceeds `limit` (or 65535), TC is set and only the longest run of whole records that fits is kept,
 * in order (answer, then authority, then additional; the first record that does not fit ends it), with
 * room left for the OPT: what CoreDNS sends (miekg/dns `Msg.Truncate`).
 */
export function encodeResponse(
  request: Buffer,
  query: ParsedQuery,
  resolution: Resolution,
  opt: ResponseOpt | undefined,
  limit: number,
): EncodedResponse {
  request.copy(scratch, HEADER_SIZE, HEADER_SIZE, query.questionEnd);
  writeOffset = query.questionEnd;
  overflowed = false;
  questionName = query.plainName && query.name !== "." ? query.name : undefined;
  compression = undefined;
  recordEnds.length = 0;
  let answers = writeSection(resolution.answers);
  let authority = writeSection(resolution.authority);
  let additional = writeSection(resolution.additional);
  const optLength = opt ? OPT_LENGTH : 0;
  const budget = Math.min(limit, MAX_MESSAGE_SIZE) - optLength;
  const truncated = overflowed || writeOffset > budget;
  if (truncated) {
    // Pointers only point backwards, so any prefix of the records is a valid message.
    let kept = 0;
    while (kept < recordEnds.length && recordEnds[kept]! <= budget) kept++;
    writeOffset = kept === 0 ? query.questionEnd : recordEnds[kept - 1]!;
    answers = Math.min(answers, kept);
    authority = Math.min(authority, kept - answers);
    additional = kept - answers - authority;
  }
  if (opt) writeOpt(opt, resolution.rcode);
  const flags =
    FLAG_QR |
    (resolution.aa ? FLAG_AA : 0) |
    (truncated ? FLAG_TC : 0) |
    (query.flags & (FLAG_RD | FLAG_CD)) |
    (resolution.rcode & 0xf);
  writeHeader(query.id, flags, 1, answers, authority, additional + (opt ? 1 : 0));
  const bytes = Buffer.allocUnsafe(writeOffset);
  scratch.copy(bytes, 0, 0, writeOffset);
  return { bytes, truncated };
}

/** Writes records until the hard size limit is passed; returns how many were written. */
function writeSection(records: readonly DnsRecord[]): number {
  let written = 0;
  for (const record of records) {
    // Past the hard limit the answer is truncated anyway; the scratch has room for one more record.
    if (overflowed || writeOffset > MAX_MESSAGE_SIZE) {
      overflowed = true;
      break;
    }
    writeRecord(record);
    recordEnds.push(writeOffset);
    written++;
  }
  return written;
}

/**
 * A header-only error response (FORMERR, NOTIMP, …): no question, since the query could not be
 * trusted or understood. The opcode and RD/CD are copied from the query's flags.
 */
export function encodeHeaderOnly(id: number, queryFlags: number, rcode: number): Buffer {
  const out = Buffer.alloc(HEADER_SIZE);
  out.writeUInt16BE(id, 0);
  out.writeUInt16BE(FLAG_QR | (queryFlags & (OPCODE_MASK | FLAG_RD | FLAG_CD)) | (rcode & 0xf), 2);
  return out;
}

function writeHeader(id: number, flags: number, qd: number, an: number, ns: number, ar: number): void {
  scratch.writeUInt16BE(id, 0);
  scratch.writeUInt16BE(flags, 2);
  scratch.writeUInt16BE(qd, 4);
  scratch.writeUInt16BE(an, 6);
  scratch.writeUInt16BE(ns, 8);
  scratch.writeUInt16BE(ar, 10);
}

function writeName(name: string, compress: boolean): void {
  if (name === "" || name === ".") {
    scratch[writeOffset++] = 0;
    return;
  }
  if (name.length > MAX_NAME_TEXT || name.includes("\\"))
    throw new EncodeError(`cannot encode name "${name}"`);
  for (let start = 0; start < name.length;) {
    const pointer = compress ? findPointer(name, start) : -1;
    if (pointer >= 0) {
      scratch.writeUInt16BE(0xc000 | pointer, writeOffset);
      writeOffset += 2;
      return;
    }
    let end = name.indexOf(".", start);
    if (end < 0) end = name.length;
    const length = end - start;
    if (length === 0 || length > MAX_LABEL) throw new EncodeError(`cannot encode name "${name}"`);
    remember(name, start);
    scratch[writeOffset++] = length;
    for (let i = start; i < end; i++) scratch[writeOffset++] = name.charCodeAt(i) & 0xff;
    start = end + 1;
  }
  scratch[writeOffset++] = 0;
}

/** Offset of an earlier occurrence of `name` from `start` on, or -1. Case-sensitive, so case is kept. */
function findPointer(name: string, start: number): number {
  if (start === 0 && name === questionName) return HEADER_SIZE;
  if (questionName !== undefined) {
    const length = name.length - start;
    const at = questionName.length - length;
    if (at === 0 || (at > 0 && questionName.charCodeAt(at - 1) === DOT)) {
      let i = 0;
      while (i < length && questionName.charCodeAt(at + i) === name.charCodeAt(start + i)) i++;
      if (i === length) return HEADER_SIZE + at;
    }
  }
  return start === 0 ? (compression?.get(name) ?? -1) : -1;
}

/**
 * Remembers where a whole name starts. Suffixes need no entries: the names we emit share suffixes
 * only with the question (found by the direct comparison above), and otherwise repeat an earlier
 * name whole (glue owners are SRV/NS targets). This keeps encoding free of substring allocations.
 */
function remember(name: string, start: number): void {
  if (start !== 0 || writeOffset >= 0x4000) return;
  compression ??= new Map();
  if (!compression.has(name)) compression.set(name, writeOffset);
}

function writeRecord(record: DnsRecord): void {
  writeName(record.name, true);
  scratch.writeUInt16BE(record.type, writeOffset);
  scratch.writeUInt16BE(CLASS_IN, writeOffset + 2);
  scratch.writeUInt32BE(record.ttl >>> 0, writeOffset + 4);
  const lengthAt = writeOffset + 8;
  writeOffset += 10;
  switch (record.type) {
    case RRType.A:
    case RRType.AAAA:
      // 4 or 16 bytes: a loop beats the native TypedArray.set call at this size.
      for (const byte of record.rdata) scratch[writeOffset++] = byte;
      break;
    case RRType.SRV:
      scratch.writeUInt16BE(record.priority, writeOffset);
      scratch.writeUInt16BE(record.weight, writeOffset + 2);
      scratch.writeUInt16BE(record.port, writeOffset + 4);
      writeOffset += 6;
      writeName(record.target, false);
      break;
    case RRType.TXT: {
      const length = Math.min(255, Buffer.byteLength(record.text));
      scratch[writeOffset++] = length;
      writeOffset += scratch.write(record.text, writeOffset, length, "utf8");
      break;
    }
    case RRType.SOA:
      writeName(record.mname, true);
      writeName(record.rname, true);
      for (const value of [record.serial, record.refresh, record.retry, record.expire, record.minimum]) {
        scratch.writeUInt32BE(value >>> 0, writeOffset);
        writeOffset += 4;
      }
      break;
    case RRType.NS:
      writeName(record.target, true);
      break;
  }
  scratch.writeUInt16BE(writeOffset - lengthAt - 2, lengthAt);
}

function writeOpt(opt: ResponseOpt, rcode: number): void {
  scratch[writeOffset] = 0;
  scratch.writeUInt16BE(RRType.OPT, writeOffset + 1);
  scratch.writeUInt16BE(opt.udpPayloadSize, writeOffset + 3);
  scratch[writeOffset + 5] = (rcode >> 4) & 0xff;
  scratch[writeOffset + 6] = 0;
  scratch.writeUInt16BE(opt.dnssecOk ? 0x8000 : 0, writeOffset + 7);
  scratch.writeUInt16BE(0, writeOffset + 9);
  writeOffset += 11;
}
