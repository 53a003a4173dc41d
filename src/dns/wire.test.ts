import assert from "node:assert/strict";
import { describe, test } from "node:test";
import dnsPacket from "dns-packet";
import type { Packet, RecordType, SrvAnswer, StringAnswer } from "dns-packet";
import { addBigHeadless, buildFixtureZone, ednsOpt, serviceImport } from "./fixtures.js";
import { Rcode } from "./records.js";
import { handleDnsMessage } from "./wire.js";
import type { DnsForwarder, DnsHandlerOptions, QueryInfo } from "./wire.js";

const zone = buildFixtureZone();
addBigHeadless(zone, 100);
const options: DnsHandlerOptions = { zone };

interface QueryOptions {
  readonly id?: number;
  /** EDNS UDP payload size, or false for no OPT record. */
  readonly edns?: number | false;
  readonly dnssecOk?: boolean;
}

function query(
  name: string,
  type: RecordType,
  { id = 4242, edns = 1232, dnssecOk = false }: QueryOptions = {},
): Buffer {
  const packet: Packet = {
    type: "query",
    id,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ name, type, class: "IN" }],
    additionals: edns === false ? [] : [ednsOpt(edns, dnssecOk)],
  };
  return dnsPacket.encode(packet);
}

function answer(
  request: Buffer,
  transport: "udp" | "tcp" = "udp",
  opts: DnsHandlerOptions = options,
): Buffer {
  const reply = handleDnsMessage(request, transport, opts);
  assert.ok(Buffer.isBuffer(reply), "expected a synchronous reply");
  return reply;
}

/** dns-packet decodes the header rcode as text but its types leave the field out. */
type Decoded = ReturnType<typeof dnsPacket.decode> & { rcode: string };

function decode(bytes: Buffer): Decoded {
  return dnsPacket.decode(bytes) as Decoded;
}

/** A hand-built message: 12-byte header fields then raw sections. */
function raw(
  fields: { id?: number; flags?: number; qd?: number; an?: number; ns?: number; ar?: number },
  ...body: number[][]
): Buffer {
  const header = Buffer.alloc(12);
  header.writeUInt16BE(fields.id ?? 0x1234, 0);
  header.writeUInt16BE(fields.flags ?? 0x0100, 2);
  header.writeUInt16BE(fields.qd ?? 1, 4);
  header.writeUInt16BE(fields.an ?? 0, 6);
  header.writeUInt16BE(fields.ns ?? 0, 8);
  header.writeUInt16BE(fields.ar ?? 0, 10);
  return Buffer.concat([header, Buffer.from(body.flat())]);
}

/** Wire form of a name from labels. */
function wireName(...labels: (string | number[])[]): number[] {
  const out: number[] = [];
  for (const label of labels) {
    const bytes = typeof label === "string" ? [...Buffer.from(label, "latin1")] : label;
    out.push(bytes.length, ...bytes);
  }
  out.push(0);
  return out;
}

const A_IN = [0, 1, 0, 1];
const ZONE_LABELS = ["clusterset", "local"];
const optRecord = (size = 1232, version = 0): number[] => [
  0,
  0,
  41,
  size >> 8,
  size & 0xff,
  0,
  version,
  0,
  0,
  0,
  0,
];

const rcodeOf = (bytes: Buffer): number => bytes.readUInt16BE(2) & 0xf;
const hasFlag = (bytes: Buffer, flag: number): boolean => (bytes.readUInt16BE(2) & flag) !== 0;

describe("wire: answers", () => {
  test("an A answer carries the ID, QR+AA+RD (not RA) and the question", () => {
    const response = decode(answer(query("svc1.testns.svc.clusterset.local", "A", { id: 777 })));
    assert.equal(response.id, 777);
    assert.equal(response.type, "response");
    assert.equal(response.flag_aa, true);
    assert.equal(response.flag_rd, true);
    assert.equal(response.flag_ra, false);
    assert.equal(response.rcode, "NOERROR");
    assert.deepEqual(response.questions, [
      { name: "svc1.testns.svc.clusterset.local", type: "A", class: "IN" },
    ]);
    assert.deepEqual(
      response.answers?.map((r) => [r.name, r.type, (r as StringAnswer).ttl, (r as StringAnswer).data]),
      [["svc1.testns.svc.clusterset.local", "A", 5, "10.0.0.1"]],
    );
  });

  test("the question's case is echoed in the question and the answers", () => {
    const request = query("WhOaMi.Demo.svc.ClusterSet.local", "A");
    const bytes = answer(request);
    const response = decode(bytes);
    assert.equal(response.questions?.[0]?.name, "WhOaMi.Demo.svc.ClusterSet.local");
    assert.deepEqual(
      response.answers?.map((r) => r.name),
      ["WhOaMi.Demo.svc.ClusterSet.local"],
    );
    assert.ok(
      bytes.subarray(12, 12 + 38).equals(request.subarray(12, 12 + 38)),
      "question copied byte for byte",
    );
  });

  test("SRV with glue decodes, and SRV targets are written uncompressed (RFC 2782)", () => {
    const bytes = answer(query("_http._tcp.hdls1.testns.svc.clusterset.local", "SRV"));
    const response = decode(bytes);
    assert.equal(response.answers?.length, 5);
    assert.equal(response.additionals?.filter((r) => r.type === "A" || r.type === "AAAA").length, 6);
    for (const record of response.answers ?? []) assert.equal((record as SrvAnswer).data.weight, 16);
    for (const { type, rdata } of walkRecords(bytes).answers) {
      assert.equal(type, 33);
      const target = rdata.subarray(6);
      assert.equal(target.at(-1), 0, "target ends in the root label, not a pointer");
      assert.ok(
        ![...target].some((b, i) => (b & 0xc0) === 0xc0 && isLabelStart(target, i)),
        "no pointer in target",
      );
    }
  });

  test("names are compressed: 100 A records cost 16 bytes each", () => {
    const bytes = answer(query("big.testns.svc.clusterset.local", "A", { edns: 4096 }));
    const response = decode(bytes);
    assert.equal(response.answers?.length, 100);
    const headerAndQuestion = 12 + wireName("big", "testns", "svc", ...ZONE_LABELS).length + 4;
    assert.equal(
      bytes.length,
      headerAndQuestion + 100 * 16 + 11,
      "2-byte pointer + 10 fixed + 4 rdata each, + OPT",
    );
  });

  test("NXDOMAIN and NODATA carry the SOA in authority", () => {
    const nx = decode(answer(query("nope.testns.svc.clusterset.local", "A")));
    assert.equal(nx.rcode, "NXDOMAIN");
    assert.equal(nx.flag_aa, true);
    assert.deepEqual(
      nx.authorities?.map((r) => [r.name, r.type, (r as StringAnswer).ttl]),
      [["clusterset.local", "SOA", 5]],
    );
    const soa = (nx.authorities?.[0] as unknown as { data: Record<string, unknown> }).data;
    assert.deepEqual(soa, {
      mname: "ns.dns.clusterset.local",
      rname: "hostmaster.clusterset.local",
      serial: 1499347823,
      refresh: 7200,
      retry: 1800,
      expire: 86400,
      minimum: 5,
    });
    const nodata = decode(answer(query("svc1.testns.svc.clusterset.local", "AAAA")));
    assert.equal(nodata.rcode, "NOERROR");
    assert.equal(nodata.answers?.length, 0);
    assert.equal(nodata.authorities?.[0]?.type, "SOA");
  });

  test("TXT dns-version", () => {
    const response = decode(answer(query("dns-version.clusterset.local", "TXT")));
    const txt = response.answers?.[0] as { ttl: number; data: Buffer[] };
    assert.equal(txt.ttl, 28800);
    assert.deepEqual(txt.data.map(String), ["1.1.0"]);
  });

  test("names outside the zone are REFUSED with the question echoed and AA clear", () => {
    const response = decode(answer(query("example.com", "A")));
    assert.equal(response.rcode, "REFUSED");
    assert.equal(response.flag_aa, false);
    assert.equal(response.questions?.[0]?.name, "example.com");
  });

  test("root and non-IN classes are REFUSED", () => {
    assert.equal(decode(answer(query(".", "NS"))).rcode, "REFUSED");
    const chaos = raw({}, wireName("version", "bind"), [0, 16, 0, 3]);
    assert.equal(rcodeOf(answer(chaos)), Rcode.REFUSED);
  });

  test("unencodable data becomes SERVFAIL instead of an exception", () => {
    const z = buildFixtureZone();
    z.upsertServiceImport(
      serviceImport("testns", "badport", "ClusterSetIP", [{ name: "x", port: 70000 }], ["10.0.0.1"]),
    );
    const bytes = answer(query("badport.testns.svc.clusterset.local", "SRV"), "udp", { zone: z });
    assert.equal(rcodeOf(bytes), Rcode.SERVFAIL);
    assert.equal(decode(bytes).id, 4242);
  });
});

describe("wire: EDNS and truncation", () => {
  const big = "big.testns.svc.clusterset.local";

  test("an OPT in the query gets an OPT back echoing the client's buffer size and DO bit (as CoreDNS)", () => {
    const response = decode(
      answer(query("svc1.testns.svc.clusterset.local", "A", { edns: 1232, dnssecOk: true })),
    );
    const opt = response.additionals?.find((r) => r.type === "OPT") as
      { udpPayloadSize: number; flag_do: boolean } | undefined;
    assert.equal(opt?.udpPayloadSize, 1232);
    assert.equal(opt?.flag_do, true);
    const other = decode(answer(query("svc1.testns.svc.clusterset.local", "A", { edns: 4000 })));
    assert.equal((other.additionals?.[0] as { udpPayloadSize: number }).udpPayloadSize, 4000);
  });

  test("no OPT in the query: no OPT back, a 512-byte limit, TC, and the records that fit", () => {
    const bytes = answer(query(big, "A", { edns: false }));
    assert.ok(bytes.length <= 512);
    const response = decode(bytes);
    assert.equal(response.flag_tc, true);
    assert.equal(response.rcode, "NOERROR");
    assert.deepEqual(
      response.questions?.map((q) => q.name),
      [big],
    );
    const kept = response.answers?.length ?? 0;
    assert.ok(kept > 10 && kept < 100, `kept ${kept} of 100 answers`);
    const full = decode(answer(query(big, "A", { edns: false }), "tcp"));
    assert.deepEqual(response.answers, full.answers?.slice(0, kept), "a prefix of the full answer, in order");
    assert.ok(512 - bytes.length < 16, "no room left for one more A record");
    assert.equal(response.additionals?.length, 0);
  });

  test("the client's EDNS payload size is honoured", () => {
    const fits = answer(query(big, "A", { edns: 4096 }));
    assert.equal(decode(fits).flag_tc, false);
    assert.equal(decode(fits).answers?.length, 100);

    const truncated = answer(query(big, "A", { edns: 1232 }));
    const response = decode(truncated);
    assert.equal(response.flag_tc, true);
    const kept = response.answers?.length ?? 0;
    assert.ok(kept > 50 && kept < 100, `kept ${kept} of 100 answers`);
    assert.deepEqual(
      response.additionals?.map((r) => r.type),
      ["OPT"],
      "OPT survives truncation",
    );
    assert.ok(truncated.length <= 1232 && truncated.length > 1232 - 16);
  });

  test("an advertised size below 512 counts as 512; above maxUdpPayload is capped", () => {
    const tiny = answer(query("_http._tcp.hdls1.testns.svc.clusterset.local", "SRV", { edns: 100 }));
    assert.equal(decode(tiny).flag_tc, true, "563-byte answer does not fit 512");
    const roomy = answer(query("hdls1.testns.svc.clusterset.local", "A", { edns: 100 }));
    assert.equal(decode(roomy).answers?.length, 4, "small answers still fit the 512 floor");
    const capped = answer(query(big, "A", { edns: 65000 }), "udp", { zone, maxUdpPayload: 1232 });
    assert.equal(decode(capped).flag_tc, true);
  });

  test("TCP returns the full answer regardless of EDNS", () => {
    const response = decode(answer(query(big, "A", { edns: false }), "tcp"));
    assert.equal(response.flag_tc, false);
    assert.equal(response.answers?.length, 100);
  });

  test("a response over 65535 bytes is truncated even on TCP", () => {
    const z = buildFixtureZone();
    addBigHeadless(z, 5000);
    const bytes = answer(query(big, "A"), "tcp", { zone: z });
    assert.ok(bytes.length <= 65535);
    assert.equal(decode(bytes).flag_tc, true);
  });

  test("EDNS version 1 gets BADVERS (extended rcode 16) with an OPT", () => {
    const bytes = answer(
      raw({ ar: 1 }, wireName("svc1", "testns", "svc", ...ZONE_LABELS), A_IN, optRecord(1232, 1)),
    );
    assert.equal(rcodeOf(bytes), 0);
    const opt = decode(bytes).additionals?.[0] as { type: string; extendedRcode: number };
    assert.equal(opt.type, "OPT");
    assert.equal(opt.extendedRcode, 1, "16 >> 4");
    assert.equal(decode(bytes).answers?.length, 0);
  });

  test("two OPT records, or an OPT not owned by the root, are FORMERR", () => {
    const name = wireName("svc1", "testns", "svc", ...ZONE_LABELS);
    assert.equal(rcodeOf(answer(raw({ ar: 2 }, name, A_IN, optRecord(), optRecord()))), Rcode.FORMERR);
    const notRoot = [1, 0x61, ...optRecord()];
    assert.equal(rcodeOf(answer(raw({ ar: 1 }, name, A_IN, notRoot))), Rcode.FORMERR);
  });
});

describe("wire: malformed and unusual messages", () => {
  const name = wireName("svc1", "testns", "svc", ...ZONE_LABELS);

  test("too short to carry an ID: dropped; a partial header: FORMERR with the ID", () => {
    assert.equal(handleDnsMessage(Buffer.from([0x12]), "udp", options), null);
    const bytes = answer(Buffer.from([0xab, 0xcd, 0x01, 0x00, 0x00]));
    assert.equal(bytes.readUInt16BE(0), 0xabcd);
    assert.equal(rcodeOf(bytes), Rcode.FORMERR);
    assert.ok(hasFlag(bytes, 0x8000));
  });

  test("responses (QR set) are never answered", () => {
    assert.equal(handleDnsMessage(raw({ flags: 0x8100 }, name, A_IN), "udp", options), null);
  });

  test("QDCOUNT other than 1 is FORMERR", () => {
    assert.equal(rcodeOf(answer(raw({ qd: 0 }))), Rcode.FORMERR);
    assert.equal(rcodeOf(answer(raw({ qd: 2 }, name, A_IN, name, A_IN))), Rcode.FORMERR);
  });

  test("opcodes other than QUERY are NOTIMP, opcode echoed", () => {
    for (const opcode of [1, 2, 4, 5, 15]) {
      const bytes = answer(raw({ flags: opcode << 11 }, name, A_IN));
      assert.equal(rcodeOf(bytes), Rcode.NOTIMP, `opcode ${opcode}`);
      assert.equal((bytes.readUInt16BE(2) >> 11) & 0xf, opcode);
    }
  });

  test("every truncation of a valid query is FORMERR (or dropped), never an exception", () => {
    const full = query("_http._tcp.hdls1.testns.svc.clusterset.local", "SRV");
    for (let length = 0; length < full.length; length++) {
      const reply = handleDnsMessage(full.subarray(0, length), "udp", options);
      if (length < 2) assert.equal(reply, null);
      else assert.ok(Buffer.isBuffer(reply) && rcodeOf(reply) === Rcode.FORMERR, `length ${length}`);
    }
  });

  test("a compression pointer in the question is FORMERR (no pointer is ever followed)", () => {
    const selfLoop = raw({}, [0xc0, 12], A_IN);
    assert.equal(rcodeOf(answer(selfLoop)), Rcode.FORMERR);
    const forward = raw({}, [3, 0x61, 0x62, 0x63, 0xc0, 12], A_IN);
    assert.equal(rcodeOf(answer(forward)), Rcode.FORMERR);
  });

  test("a pointer loop in another record's owner name is skipped, not followed", () => {
    const questionEnd = 12 + name.length + 4;
    const loopingRecord = [0xc0 | (questionEnd >> 8), questionEnd & 0xff, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0];
    const bytes = answer(raw({ an: 1 }, name, A_IN, loopingRecord));
    assert.equal(rcodeOf(bytes), Rcode.NOERROR);
    assert.equal(decode(bytes).answers?.[0]?.type, "A");
  });

  test("names over 255 octets or labels over 63 are FORMERR", () => {
    const longLabel = "x".repeat(63);
    const tooLong = wireName(longLabel, longLabel, longLabel, longLabel, ...ZONE_LABELS);
    assert.ok(tooLong.length > 255);
    assert.equal(rcodeOf(answer(raw({}, tooLong, A_IN))), Rcode.FORMERR);
    const wideLabel = wireName("x".repeat(64), ...ZONE_LABELS);
    assert.equal(rcodeOf(answer(raw({}, wideLabel, A_IN))), Rcode.FORMERR);
    const reserved = raw({}, [0x41, ...Array<number>(20).fill(0x61), 0], A_IN);
    assert.equal(rcodeOf(answer(reserved)), Rcode.FORMERR);
  });

  test("a 255-octet name is accepted", () => {
    const label = "x".repeat(61);
    const max = wireName(label, label, label, "y".repeat(50), ...ZONE_LABELS);
    assert.equal(max.length, 255);
    assert.equal(rcodeOf(answer(raw({}, max, A_IN))), Rcode.NXDOMAIN);
  });

  test("binary label bytes are echoed exactly and do not match anything", () => {
    const binary = raw({}, wireName([0xff, 0x00, 0x80], "testns", "svc", ...ZONE_LABELS), A_IN);
    const bytes = answer(binary);
    assert.equal(rcodeOf(bytes), Rcode.NXDOMAIN);
    assert.ok(bytes.subarray(12, binary.length).equals(binary.subarray(12)), "question bytes preserved");
  });

  test("a '.' byte inside a label is not a label separator", () => {
    const dotted = raw({}, wireName("svc1.testns", "svc", ...ZONE_LABELS), A_IN);
    assert.equal(rcodeOf(answer(dotted)), Rcode.NXDOMAIN, "svc1.testns is one label, not a service name");
  });

  test("answer/authority records in a query are skipped; trailing bytes are ignored", () => {
    const record = [0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4, 1, 2, 3, 4];
    const bytes = answer(raw({ an: 1, ns: 1 }, name, A_IN, record, record, [9, 9, 9]));
    assert.equal(rcodeOf(bytes), Rcode.NOERROR);
    assert.equal(decode(bytes).answers?.length, 1);
    const overlong = [0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 200, 1];
    assert.equal(rcodeOf(answer(raw({ an: 1 }, name, A_IN, overlong))), Rcode.FORMERR);
  });
});

describe("wire: forwarder hook and query info", () => {
  test("out-of-zone questions go to the forwarder; in-zone ones never do", async () => {
    const calls: string[] = [];
    const forwarder: DnsForwarder = {
      forward: (request, question, transport) => {
        calls.push(`${question.name}/${question.type}/${transport}`);
        return Promise.resolve(Buffer.from(request));
      },
    };
    const request = query("example.com", "AAAA");
    const reply = handleDnsMessage(request, "tcp", { zone, forwarder });
    assert.ok(reply instanceof Promise);
    assert.deepEqual(await reply, request);
    assert.deepEqual(calls, ["example.com/28/tcp"]);
    assert.ok(
      Buffer.isBuffer(
        handleDnsMessage(query("svc1.testns.svc.clusterset.local", "A"), "udp", { zone, forwarder }),
      ),
    );
    assert.equal(calls.length, 1);
  });

  test("a failing forwarder yields SERVFAIL", async () => {
    const forwarder: DnsForwarder = { forward: () => Promise.reject(new Error("upstream down")) };
    const reply = await handleDnsMessage(query("example.com", "A", { id: 9 }), "udp", { zone, forwarder });
    assert.ok(reply);
    assert.equal(reply.readUInt16BE(0), 9);
    assert.equal(rcodeOf(reply), Rcode.SERVFAIL);
  });

  test("QueryInfo reports qtype, rcode and truncation", () => {
    const info: QueryInfo = { qtype: 0, rcode: 0, truncated: false, forwarded: false };
    void handleDnsMessage(
      query("big.testns.svc.clusterset.local", "A", { edns: false }),
      "udp",
      options,
      info,
    );
    assert.deepEqual(info, { qtype: 1, rcode: 0, truncated: true, forwarded: false });
    void handleDnsMessage(query("nope.testns.svc.clusterset.local", "SRV"), "udp", options, info);
    assert.deepEqual(info, { qtype: 33, rcode: 3, truncated: false, forwarded: false });
    void handleDnsMessage(Buffer.from([1]), "udp", options, info);
    assert.deepEqual(info, { qtype: -1, rcode: -1, truncated: false, forwarded: false });
  });
});

/** Splits a response into its records' types and rdata, to inspect encodings dns-packet hides. */
function walkRecords(message: Buffer): { answers: { type: number; rdata: Buffer }[] } {
  let offset = 12;
  while (message[offset] !== 0) offset += message[offset]! + 1;
  offset += 5;
  const answers: { type: number; rdata: Buffer }[] = [];
  for (let i = 0; i < message.readUInt16BE(6); i++) {
    while (message[offset] !== 0 && (message[offset]! & 0xc0) !== 0xc0) offset += message[offset]! + 1;
    offset += message[offset] === 0 ? 1 : 2;
    const type = message.readUInt16BE(offset);
    const length = message.readUInt16BE(offset + 8);
    answers.push({ type, rdata: message.subarray(offset + 10, offset + 10 + length) });
    offset += 10 + length;
  }
  return { answers };
}

/** Whether index i of an uncompressed wire name is the start of a label (its length byte). */
function isLabelStart(name: Buffer, i: number): boolean {
  let offset = 0;
  while (offset < i) offset += name[offset]! + 1;
  return offset === i;
}
