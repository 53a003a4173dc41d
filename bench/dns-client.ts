/**
 * A minimal DNS client for the benchmarks and tests: builds queries byte by byte (so odd opcodes,
 * classes and EDNS versions can be sent), sends them over UDP or TCP, and decodes answers with
 * dns-packet, an implementation independent of Meridian's codec.
 */
import { createSocket } from "node:dgram";
import net from "node:net";
import dnsPacket from "dns-packet";
import type { Packet } from "dns-packet";
import { RRType } from "../src/dns/records.js";

// The zone's own record types, plus one it does not serve (to ask for what is not there).
export const QTYPES: Record<string, number> = { ...RRType, CAA: 257 };

export interface QuerySpec {
  name: string;
  type: string;
  transport?: "udp" | "tcp";
  /** EDNS UDP payload size; null sends no OPT. Default 1232 (dig's default). */
  bufsize?: number | null;
  dnssecOk?: boolean;
  ednsVersion?: number;
  /** Query class; default 1 (IN). */
  qclass?: number;
  opcode?: number;
}

export function encodeQuery(spec: QuerySpec, id: number): Buffer {
  const labels = spec.name
    .replace(/\.$/, "")
    .split(".")
    .filter((l) => l.length > 0);
  const qtype = QTYPES[spec.type.toUpperCase()];
  if (qtype === undefined) throw new Error(`unknown query type ${spec.type}`);
  const bufsize = spec.bufsize === undefined ? 1232 : spec.bufsize;
  const parts: Buffer[] = [];
  const header = Buffer.alloc(12);
  header.writeUInt16BE(id, 0);
  // RD set, as dig and stub resolvers send it.
  header.writeUInt16BE(((spec.opcode ?? 0) << 11) | 0x0100, 2);
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(bufsize === null ? 0 : 1, 10);
  parts.push(header);
  for (const label of labels) {
    const bytes = Buffer.from(label, "latin1");
    parts.push(Buffer.from([bytes.length]), bytes);
  }
  const tail = Buffer.alloc(5);
  tail.writeUInt8(0, 0);
  tail.writeUInt16BE(qtype, 1);
  tail.writeUInt16BE(spec.qclass ?? 1, 3);
  parts.push(tail);
  if (bufsize !== null) {
    const opt = Buffer.alloc(11);
    opt.writeUInt8(0, 0);
    opt.writeUInt16BE(41, 1);
    opt.writeUInt16BE(bufsize, 3);
    opt.writeUInt8(0, 5); // extended rcode
    opt.writeUInt8(spec.ednsVersion ?? 0, 6);
    opt.writeUInt16BE(spec.dnssecOk ? 0x8000 : 0, 7);
    opt.writeUInt16BE(0, 9);
    parts.push(opt);
  }
  return Buffer.concat(parts);
}

export async function exchange(
  server: { host: string; port: number },
  spec: QuerySpec,
  timeoutMs = 3000,
): Promise<Buffer> {
  const id = Math.floor(Math.random() * 65536);
  const query = encodeQuery(spec, id);
  return spec.transport === "tcp"
    ? exchangeTcp(server, query, timeoutMs)
    : exchangeUdp(server, query, timeoutMs);
}

function exchangeUdp(
  server: { host: string; port: number },
  query: Buffer,
  timeoutMs: number,
): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = createSocket(server.host.includes(":") ? "udp6" : "udp4");
    const timer = setTimeout(() => {
      socket.close();
      reject(new Error(`no UDP answer from ${server.host}:${server.port} within ${timeoutMs}ms`));
    }, timeoutMs);
    socket.on("message", (message) => {
      clearTimeout(timer);
      socket.close();
      resolve(message);
    });
    socket.on("error", (error) => {
      clearTimeout(timer);
      socket.close();
      reject(error);
    });
    socket.send(query, server.port, server.host);
  });
}

function exchangeTcp(
  server: { host: string; port: number },
  query: Buffer,
  timeoutMs: number,
): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: server.host, port: server.port });
    let data = Buffer.alloc(0);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no TCP answer from ${server.host}:${server.port} within ${timeoutMs}ms`));
    }, timeoutMs);
    socket.on("connect", () => {
      const frame = Buffer.alloc(2 + query.length);
      frame.writeUInt16BE(query.length, 0);
      query.copy(frame, 2);
      socket.write(frame);
    });
    socket.on("data", (chunk: Buffer) => {
      data = Buffer.concat([data, chunk]);
      if (data.length >= 2 && data.length >= 2 + data.readUInt16BE(0)) {
        clearTimeout(timer);
        socket.destroy();
        resolve(data.subarray(2, 2 + data.readUInt16BE(0)));
      }
    });
    socket.on("close", () => {
      clearTimeout(timer);
      reject(new Error(`TCP connection to ${server.host}:${server.port} closed without an answer`));
    });
    socket.on("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

export function decode(bytes: Buffer): Packet {
  return dnsPacket.decode(bytes);
}

/** Header facts dig shows, plus the extended rcode from OPT. */
export interface NormalizedResponse {
  rcode: string;
  flags: string;
  opt: string;
  answer: string[];
  authority: string[];
  additional: string[];
}

type AnyRecord = { name: string; type: string; ttl?: number; class?: string; data?: unknown } & Record<
  string,
  unknown
>;

/**
 * A comparable form: header flags, OPT, and each section as sorted presentation lines. The SOA
 * serial (the time of each server's last change) is replaced by "SERIAL".
 */
export function normalize(bytes: Buffer): NormalizedResponse {
  const packet = decode(bytes) as Packet & { rcode?: string; opcode?: string };
  const flags = ["qr", "aa", "tc", "rd", "ra", "ad", "cd"]
    .filter((f) => (packet as unknown as Record<string, boolean>)[`flag_${f}`])
    .join(" ");
  const additionals = (packet.additionals ?? []) as unknown as AnyRecord[];
  const opt = additionals.find((r) => r.type === "OPT");
  const optText = opt
    ? `udp=${String(opt["udpPayloadSize"])} version=${String(opt["ednsVersion"])} extRcode=${String(opt["extendedRcode"])} do=${String(Boolean(opt["flag_do"]))}`
    : "none";
  const section = (records: AnyRecord[] | undefined): string[] =>
    (records ?? [])
      .filter((r) => r.type !== "OPT")
      .map(recordText)
      .sort();
  return {
    rcode: `${packet.opcode ?? "?"}/${packet.rcode ?? "?"}`,
    flags,
    opt: optText,
    answer: section(packet.answers as unknown as AnyRecord[]),
    authority: section(packet.authorities as unknown as AnyRecord[]),
    additional: section(additionals),
  };
}

function recordText(record: AnyRecord): string {
  let data: string;
  const d = record.data as Record<string, unknown> | string | Buffer[] | undefined;
  switch (record.type) {
    case "SOA": {
      const soa = d as Record<string, unknown>;
      data = `${String(soa["mname"])} ${String(soa["rname"])} SERIAL ${String(soa["refresh"])} ${String(soa["retry"])} ${String(soa["expire"])} ${String(soa["minimum"])}`;
      break;
    }
    case "SRV": {
      const srv = d as Record<string, unknown>;
      data = `${String(srv["priority"])} ${String(srv["weight"])} ${String(srv["port"])} ${String(srv["target"])}`;
      break;
    }
    case "TXT":
      data = (d as Buffer[]).map((b) => JSON.stringify(b.toString())).join(" ");
      break;
    default:
      data = typeof d === "string" ? d : JSON.stringify(d);
  }
  return `${record.name} ${String(record.ttl)} ${record.class ?? "IN"} ${record.type} ${data}`;
}
