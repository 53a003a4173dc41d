/**
 * IP address helpers for the `clusterset.local` zone: parsing into wire bytes once, at index time, so
 * the resolver never parses text on the query path, and CoreDNS-compatible hostname generation.
 */
import { isIP } from "node:net";

/** An IP address parsed once for DNS use. */
export interface ParsedIp {
  /** 4 for IPv4 (A records), 6 for IPv6 (AAAA records). */
  readonly family: 4 | 6;
  /** Canonical text (dotted quad, or RFC 5952 for IPv6); equal addresses have equal keys. */
  readonly key: string;
  /** Wire form: 4 or 16 bytes. */
  readonly bytes: Uint8Array;
}

/**
 * Parses an IPv4 or IPv6 address as Kubernetes stores it. Returns undefined for anything that is not
 * a plain address (zone ids such as `fe80::1%eth0` included), so callers can skip it.
 *
 * IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) come back as IPv4: CoreDNS decides the record type
 * with Go's `To4()`, which treats them as IPv4, so they are served as A records there too.
 */
export function parseIp(text: string): ParsedIp | undefined {
  if (text.includes("%")) return undefined;
  const version = isIP(text);
  if (version === 4) return ipv4(parseIpv4Octets(text));
  if (version !== 6) return undefined;
  const bytes = parseIpv6Bytes(text);
  if (isIpv4Mapped(bytes)) return ipv4(bytes.subarray(12));
  return { family: 6, key: formatIpv6(bytes), bytes };
}

/**
 * The hostname CoreDNS generates for an endpoint without `hostname`: the address with `.` (IPv4) or
 * `:` (IPv6) replaced by `-`. Like the CoreDNS kubernetes plugin (the native `multicluster` option),
 * a `0` is appended when the IPv6 form ends in `-` (e.g. `fd00::` → `fd00--0`), because a DNS label
 * must not end with a hyphen. The raw text from the EndpointSlice is used, not a canonical form, as
 * CoreDNS does.
 */
export function hostnameFromIp(rawAddress: string): string {
  if (rawAddress.includes(".")) return rawAddress.replaceAll(".", "-");
  if (rawAddress.includes(":")) {
    const dashed = rawAddress.replaceAll(":", "-");
    return dashed.endsWith("-") ? `${dashed}0` : dashed;
  }
  return "";
}

function ipv4(octets: Uint8Array): ParsedIp {
  const bytes = Uint8Array.from(octets);
  return { family: 4, key: `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`, bytes };
}

function parseIpv4Octets(text: string): Uint8Array {
  const parts = text.split(".");
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) out[i] = Number(parts[i]);
  return out;
}

/** Expects text that `net.isIP` accepted as IPv6. */
function parseIpv6Bytes(text: string): Uint8Array {
  const out = new Uint8Array(16);
  const doubleColon = text.indexOf("::");
  const head = doubleColon === -1 ? text : text.slice(0, doubleColon);
  const tail = doubleColon === -1 ? "" : text.slice(doubleColon + 2);
  const headGroups = toGroups(head);
  const tailGroups = toGroups(tail);
  let index = 0;
  for (const group of headGroups) {
    out[index++] = group >> 8;
    out[index++] = group & 0xff;
  }
  index = 16 - tailGroups.length * 2;
  for (const group of tailGroups) {
    out[index++] = group >> 8;
    out[index++] = group & 0xff;
  }
  return out;
}

/** Splits colon-separated hex groups; a trailing dotted quad counts as two groups. */
function toGroups(part: string): number[] {
  if (part === "") return [];
  const groups: number[] = [];
  for (const piece of part.split(":")) {
    if (piece.includes(".")) {
      const octets = parseIpv4Octets(piece);
      groups.push(((octets[0] ?? 0) << 8) | (octets[1] ?? 0), ((octets[2] ?? 0) << 8) | (octets[3] ?? 0));
    } else {
      groups.push(parseInt(piece, 16));
    }
  }
  return groups;
}

function isIpv4Mapped(bytes: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (bytes[i] !== 0) return false;
  return bytes[10] === 0xff && bytes[11] === 0xff;
}

/** RFC 5952 text: lower-case hex, no leading zeros, the longest run (≥ 2) of zero groups as `::`. */
function formatIpv6(bytes: Uint8Array): string {
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0));
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let end = i;
    while (end < 8 && groups[end] === 0) end++;
    if (end - i > bestLength) {
      bestStart = i;
      bestLength = end - i;
    }
    i = end;
  }
  const hex = (from: number, to: number): string =>
    groups
      .slice(from, to)
      .map((g) => g.toString(16))
      .join(":");
  if (bestStart === -1) return hex(0, 8);
  return `${hex(0, bestStart)}::${hex(bestStart + bestLength, 8)}`;
}
