/**
 * Property tests on the bytes boundary: whatever arrives, the handler returns nothing or a message a
 * third-party decoder (dns-packet) accepts, with the query's ID; and for valid queries the bytes on
 * the wire say exactly what the resolver decided.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import dnsPacket from "dns-packet";
import type { Answer, RecordType } from "dns-packet";
import fc from "fast-check";
import { addBigHeadless, buildFixtureZone, ednsOpt } from "./fixtures.js";
import { parseIp } from "./ip.js";
import { RRType } from "./records.js";
import type { DnsRecord } from "./records.js";
import { resolve } from "./resolve.js";
import { handleDnsMessage } from "./wire.js";
import type { Transport } from "./wire.js";

const zone = buildFixtureZone();
addBigHeadless(zone, 60);
const unsynced = buildFixtureZone();
unsynced.setSynced(false);

const NAMES = [
  "clusterset.local",
  "svc.clusterset.local",
  "testns.svc.clusterset.local",
  "svc1.testns.svc.clusterset.local",
  "svc6.testns.svc.clusterset.local",
  "svc-dual-stack.testns.svc.clusterset.local",
  "svc-two-ports.testns.svc.clusterset.local",
  "svc-no-ips.testns.svc.clusterset.local",
  "svc-no-ports.testns.svc.clusterset.local",
  "hdls1.testns.svc.clusterset.local",
  "_http._tcp.hdls1.testns.svc.clusterset.local",
  "dup-name.clusterid.hdls1.testns.svc.clusterset.local",
  "5678-abcd--1.clusterid.hdls1.testns.svc.clusterset.local",
  "hdlsprtls.testns.svc.clusterset.local",
  "hdls-multi.testns.svc.clusterset.local",
  "web-0.c2.hdls-multi.testns.svc.clusterset.local",
  "big.testns.svc.clusterset.local",
  "whoami.demo.svc.clusterset.local",
  "dns-version.clusterset.local",
  "nope.testns.svc.clusterset.local",
  "example.com",
];
const TYPES: RecordType[] = ["A", "AAAA", "SRV", "TXT", "SOA", "NS", "MX", "CNAME", "PTR"];

const randomCase = (name: string): fc.Arbitrary<string> =>
  fc
    .array(fc.boolean(), { minLength: name.length, maxLength: name.length })
    .map((flips) => [...name].map((c, i) => (flips[i] ? c.toUpperCase() : c)).join(""));

const validQuery = fc.record({
  id: fc.integer({ min: 0, max: 0xffff }),
  name: fc.constantFrom(...NAMES).chain(randomCase),
  type: fc.constantFrom(...TYPES),
  // From 1: dns-packet writes a payload size of 0 as 4096, so 0 cannot be sent through it.
  edns: fc.option(fc.integer({ min: 1, max: 0xffff }), { nil: undefined }),
  dnssecOk: fc.boolean(),
});

type ValidQuery = typeof validQuery extends fc.Arbitrary<infer T> ? T : never;

function encodeQuery(q: ValidQuery): Buffer {
  return dnsPacket.encode({
    type: "query",
    id: q.id,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ name: q.name, type: q.type, class: "IN" }],
    additionals: q.edns === undefined ? [] : [ednsOpt(q.edns, q.dnssecOk)],
  });
}

/** A byte-level edit of a message. */
const mutation = fc.oneof(
  fc.record({ kind: fc.constant("set" as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant("truncate" as const), at: fc.nat() }),
  fc.record({ kind: fc.constant("insert" as const), at: fc.nat(), bytes: fc.uint8Array({ maxLength: 8 }) }),
  fc.record({ kind: fc.constant("delete" as const), at: fc.nat(), count: fc.integer({ min: 1, max: 8 }) }),
);

type Mutation = typeof mutation extends fc.Arbitrary<infer T> ? T : never;

function mutate(message: Buffer, edits: Mutation[]): Buffer {
  let out = Buffer.from(message);
  for (const edit of edits) {
    const at = out.length === 0 ? 0 : edit.at % (out.length + 1);
    switch (edit.kind) {
      case "set":
        if (at < out.length) out[at] = edit.value;
        break;
      case "truncate":
        out = out.subarray(0, at);
        break;
      case "insert":
        out = Buffer.concat([out.subarray(0, at), edit.bytes, out.subarray(at)]);
        break;
      case "delete":
        out = Buffer.concat([out.subarray(0, at), out.subarray(at + edit.count)]);
        break;
    }
  }
  return out;
}

/** The invariant for arbitrary input: no exception; null or a decodable response with the same ID. */
function assertSafeReply(input: Buffer, transport: Transport): void {
  const reply = handleDnsMessage(input, transport, { zone });
  assert.ok(!(reply instanceof Promise), "no forwarder configured: always synchronous");
  if (reply === null) {
    assert.ok(
      input.length < 2 || (input.length >= 3 && (input[2]! & 0x80) !== 0),
      "only tiny input or responses are dropped",
    );
    return;
  }
  assert.ok(input.length >= 2);
  assert.ok(input.length < 3 || (input[2]! & 0x80) === 0, "never answer a response");
  assert.equal(reply.readUInt16BE(0), input.readUInt16BE(0), "same ID");
  const decoded = dnsPacket.decode(reply);
  assert.equal(decoded.type, "response");
  // UDP answers may be as large as the client's EDNS size (no server cap, like CoreDNS), which a
  // mutation can set anywhere; what no answer may exceed is the transport's own limit.
  assert.ok(reply.length <= (transport === "tcp" ? 65535 : 65507));
}

const transport = fc.constantFrom<Transport>("udp", "tcp");

describe("wire properties", () => {
  test("random bytes never throw and yield null or a decodable response with the same ID", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), transport, (bytes, via) =>
        assertSafeReply(Buffer.from(bytes), via),
      ),
      { numRuns: 3000 },
    );
  });

  test("random bytes after a plausible query header behave the same", () => {
    const header = fc.record({
      id: fc.nat(0xffff),
      flags: fc.nat(0x7fff),
      counts: fc.array(fc.nat(3), { minLength: 4, maxLength: 4 }),
    });
    fc.assert(
      fc.property(header, fc.uint8Array({ maxLength: 300 }), transport, (h, body, via) => {
        const head = Buffer.alloc(12);
        head.writeUInt16BE(h.id, 0);
        head.writeUInt16BE(h.flags, 2);
        h.counts.forEach((count, i) => head.writeUInt16BE(count, 4 + 2 * i));
        assertSafeReply(Buffer.concat([head, body]), via);
      }),
      { numRuns: 3000 },
    );
  });

  test("mutated valid queries never throw and yield null or a decodable response with the same ID", () => {
    fc.assert(
      fc.property(
        validQuery,
        fc.array(mutation, { minLength: 1, maxLength: 4 }),
        transport,
        (q, edits, via) => assertSafeReply(mutate(encodeQuery(q), edits), via),
      ),
      { numRuns: 3000 },
    );
  });

  test("compression pointers anywhere in the question are rejected with FORMERR", () => {
    fc.assert(
      fc.property(validQuery, fc.nat(), fc.nat(0x3fff), (q, where, target) => {
        const message = encodeQuery(q);
        const labelStarts: number[] = [];
        for (let offset = 12; message[offset] !== 0; offset += message[offset]! + 1) labelStarts.push(offset);
        const at = labelStarts[where % labelStarts.length]!;
        message.writeUInt16BE(0xc000 | target, at);
        const reply = handleDnsMessage(message, "udp", { zone });
        assert.ok(Buffer.isBuffer(reply));
        assert.equal(reply.readUInt16BE(2) & 0xf, 1);
      }),
      { numRuns: 1000 },
    );
  });

  test("for valid queries the wire carries exactly the resolver's answer", () => {
    fc.assert(
      fc.property(validQuery, transport, fc.boolean(), (q, via, synced) => {
        const z = synced ? zone : unsynced;
        const request = encodeQuery(q);
        const reply = handleDnsMessage(request, via, { zone: z });
        assert.ok(Buffer.isBuffer(reply));
        const decoded = dnsPacket.decode(reply);
        const expected = resolve(z, { name: q.name, type: RRType[q.type as keyof typeof RRType] });
        assert.equal(decoded.id, q.id);
        assert.equal(reply.readUInt16BE(2) & 0xf, expected.rcode);
        assert.equal(decoded.flag_aa, expected.aa);
        assert.ok(
          reply
            .subarray(12, 12 + request.length - 12 - (q.edns === undefined ? 0 : 11))
            .equals(request.subarray(12, request.length - (q.edns === undefined ? 0 : 11))),
          "question echoed byte for byte",
        );
        const optCount = decoded.additionals?.filter((r) => r.type === "OPT").length;
        assert.equal(optCount, q.edns === undefined ? 0 : 1);
        const limit = via === "tcp" ? 65535 : q.edns === undefined ? 512 : Math.max(q.edns, 512);
        assert.ok(reply.length <= limit);
        if (decoded.flag_tc) {
          // Truncated: a prefix of the records, in order (answer, then authority, then additional).
          const sent = [
            ...(decoded.answers ?? []),
            ...(decoded.authorities ?? []),
            ...(decoded.additionals ?? []).filter((r) => r.type !== "OPT"),
          ].map(normalize);
          const all = [...expected.answers, ...expected.authority, ...expected.additional].map(ours);
          assert.ok(sent.length < all.length, "TC only when records were left out");
          assert.deepEqual(sent, all.slice(0, sent.length));
          return;
        }
        assert.deepEqual(decoded.answers?.map(normalize), expected.answers.map(ours));
        assert.deepEqual(decoded.authorities?.map(normalize), expected.authority.map(ours));
        assert.deepEqual(
          decoded.additionals?.filter((r) => r.type !== "OPT").map(normalize),
          expected.additional.map(ours),
        );
      }),
      { numRuns: 2000 },
    );
  });
});

/** Records from dns-packet and from the resolver, reduced to one comparable text each (case kept). */
function normalize(record: Answer): string {
  const r = record as { name: string; type: string; ttl?: number; data?: unknown };
  const data = r.data as Record<string, unknown> | string | Buffer[] | undefined;
  switch (r.type) {
    case "A":
    case "AAAA":
      return `${r.name} ${r.ttl} ${r.type} ${parseIp(data as string)?.key}`;
    case "SRV": {
      const d = data as { priority: number; weight: number; port: number; target: string };
      return `${r.name} ${r.ttl} SRV ${d.priority} ${d.weight} ${d.port} ${d.target}`;
    }
    case "TXT":
      return `${r.name} ${r.ttl} TXT ${(data as Buffer[]).map(String).join(",")}`;
    case "SOA": {
      const d = data as Record<string, string | number>;
      return `${r.name} ${r.ttl} SOA ${d.mname} ${d.rname} ${d.serial} ${d.refresh} ${d.retry} ${d.expire} ${d.minimum}`;
    }
    case "NS":
      return `${r.name} ${r.ttl} NS ${data as string}`;
    default:
      return `${r.name} ${r.type}`;
  }
}

function ours(record: DnsRecord): string {
  const { name } = record;
  switch (record.type) {
    case RRType.A:
      return `${name} ${record.ttl} A ${record.address}`;
    case RRType.AAAA:
      return `${name} ${record.ttl} AAAA ${record.address}`;
    case RRType.SRV:
      return `${name} ${record.ttl} SRV ${record.priority} ${record.weight} ${record.port} ${record.target}`;
    case RRType.TXT:
      return `${name} ${record.ttl} TXT ${record.text}`;
    case RRType.SOA:
      return `${name} ${record.ttl} SOA ${record.mname} ${record.rname} ${record.serial} ${record.refresh} ${record.retry} ${record.expire} ${record.minimum}`;
    case RRType.NS:
      return `${name} ${record.ttl} NS ${record.target}`;
  }
}
