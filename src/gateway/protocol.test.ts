import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  decodeOpen,
  encodeData,
  encodeOpen,
  FIN_FRAME,
  isServiceKey,
  FrameDecoder,
  gatewayCarries,
  MAX_FRAME_PAYLOAD,
} from "./protocol.js";

describe("OPEN header", () => {
  it("round-trips, and reports incomplete for every strict prefix", () => {
    const bytes = encodeOpen({ kind: "connect", service: "shop/payments", port: 8443 });
    assert.deepEqual(decodeOpen(bytes), {
      state: "done",
      value: { kind: "connect", service: "shop/payments", port: 8443, version: 2 },
      consumed: bytes.length,
    });
    for (let i = 0; i < bytes.length; i++)
      assert.equal(decodeOpen(bytes.subarray(0, i)).state, "incomplete", `prefix ${i}`);
    const probe = encodeOpen({ kind: "probe", service: "", port: 0 });
    assert.equal(decodeOpen(probe).state, "done");
  });

  it("opens a UDP flow with the datagram kind, which needs a service and a port like connect", () => {
    const bytes = encodeOpen({
      kind: "datagram",
      service: "kube-system/dns",
      port: 53,
      sourceNamespace: "web",
    });
    assert.equal(bytes[5], 3, "kind code 3 on the wire");
    assert.deepEqual(decodeOpen(bytes), {
      state: "done",
      value: { kind: "datagram", service: "kube-system/dns", port: 53, version: 3, sourceNamespace: "web" },
      consumed: bytes.length,
    });
    assert.throws(() => encodeOpen({ kind: "datagram", service: "", port: 53 }), /bad service key/);
    const noPort = encodeOpen({ kind: "datagram", service: "kube-system/dns", port: 0 });
    assert.deepEqual(decodeOpen(noPort), {
      state: "error",
      message: "datagram needs namespace/name and a port",
    });
    const unknownKind = Buffer.from(bytes);
    unknownKind[5] = 4;
    assert.deepEqual(decodeOpen(unknownKind), { state: "error", message: "unknown kind 4" });
  });

  it("says which Service ports a gateway carries: TCP (the default) and UDP, not SCTP", () => {
    assert.deepEqual(
      [undefined, "TCP", "UDP", "SCTP"].map((p) => gatewayCarries(p)),
      [true, true, true, false],
    );
  });

  it("carries the client's namespace in a version 3 OPEN, prefixes incomplete", () => {
    const bytes = encodeOpen({
      kind: "connect",
      service: "shop/payments",
      port: 8443,
      sourceNamespace: "web",
    });
    assert.deepEqual(decodeOpen(Buffer.concat([bytes, Buffer.from("early")])), {
      state: "done",
      value: { kind: "connect", service: "shop/payments", port: 8443, version: 3, sourceNamespace: "web" },
      consumed: bytes.length,
    });
    for (let i = 0; i < bytes.length; i++)
      assert.equal(decodeOpen(bytes.subarray(0, i)).state, "incomplete", `prefix ${i}`);
  });

  it("refuses a source namespace that is not a DNS label, on either side", () => {
    assert.throws(
      () => encodeOpen({ kind: "connect", service: "a/b", port: 1, sourceNamespace: "Web/x" }),
      /bad source namespace "Web\/x"/,
    );
    const bytes = encodeOpen({ kind: "connect", service: "a/b", port: 1, sourceNamespace: "web" });
    bytes[bytes.length - 1] = "/".charCodeAt(0);
    assert.deepEqual(decodeOpen(bytes), { state: "error", message: "bad source namespace" });
  });

  it("leaves the bytes after the header for the stream", () => {
    const bytes = Buffer.concat([
      encodeOpen({ kind: "connect", service: "a/b", port: 1 }),
      Buffer.from("rest"),
    ]);
    const r = decodeOpen(bytes);
    assert.equal(r.state, "done");
    if (r.state === "done") assert.equal(bytes.subarray(r.consumed).toString(), "rest");
  });

  it("rejects foreign protocols, bad versions, bad names and port 0 without throwing", () => {
    assert.equal(decodeOpen(Buffer.from("GET / HTTP/1.1\r\n")).state, "error");
    const bad = encodeOpen({ kind: "connect", service: "a/b", port: 1 });
    bad[4] = 9;
    assert.equal(decodeOpen(bad).state, "error");
    const zero = encodeOpen({ kind: "connect", service: "a/b", port: 1 });
    zero.writeUInt16BE(0, 6);
    assert.equal(decodeOpen(zero).state, "error");
    assert.throws(() => encodeOpen({ kind: "connect", service: "no-namespace", port: 1 }));
    assert.throws(() => encodeOpen({ kind: "connect", service: "A/B", port: 1 }));
  });

  it("validates service keys the same way however often and however many it has seen", () => {
    for (let round = 0; round < 2; round++) {
      assert.equal(isServiceKey("shop/payments"), true);
      for (const bad of [
        "shop",
        "shop/",
        "/payments",
        "Shop/payments",
        "a/b/c",
        "shop/pay_ments",
        `shop/${"a".repeat(64)}`,
      ])
        assert.equal(isServiceKey(bad), false, bad);
    }
    for (let i = 0; i < 5000; i++) assert.equal(isServiceKey(`ns-${i}/svc`), true);
    assert.equal(isServiceKey("shop/payments"), true, "still valid once the kept set was cleared");
    assert.equal(isServiceKey("shop/Payments"), false);
  });

  it("never throws on arbitrary bytes (property)", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.boolean(), (bytes, withMagic) => {
        const buf = withMagic ? Buffer.concat([Buffer.from("MRDN"), Buffer.from(bytes)]) : Buffer.from(bytes);
        const r = decodeOpen(buf);
        assert.ok(["incomplete", "error", "done"].includes(r.state));
        if (r.state === "done") assert.ok(r.consumed <= buf.length);
      }),
    );
  });
});

describe("frames", () => {
  it("delivers the same bytes and the FIN however the stream is cut (property)", () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ minLength: 1, maxLength: 200 }), { maxLength: 8 }),
        fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 20 }),
        (chunks, cuts) => {
          const next = Buffer.from("next");
          const wire = Buffer.concat([...chunks.map((c) => encodeData(Buffer.from(c))), FIN_FRAME, next]);
          const decoder = new FrameDecoder();
          const got: Buffer[] = [];
          // Each piece names the size of the frame it is part of (the bridge corks by it).
          let frame = 0;
          let frameLeft = chunks[0]?.length ?? 0;
          let rest: Buffer | undefined;
          let offset = 0;
          for (let i = 0; offset < wire.length && rest === undefined; i++) {
            const size = cuts[i % cuts.length]!;
            for (const ev of decoder.push(wire.subarray(offset, offset + size))) {
              assert.notEqual(ev.type, "error");
              if (ev.type === "data") {
                got.push(Buffer.from(ev.bytes));
                assert.equal(ev.frame, chunks[frame]!.length);
                frameLeft -= ev.bytes.length;
                if (frameLeft === 0) frameLeft = chunks[++frame]?.length ?? 0;
              }
              if (ev.type === "fin") rest = Buffer.concat([ev.rest, wire.subarray(offset + size)]);
            }
            offset += size;
          }
          assert.deepEqual(Buffer.concat(got), Buffer.concat(chunks.map((c) => Buffer.from(c))));
          assert.deepEqual(rest, next);
        },
      ),
    );
  });

  it("splits payloads larger than the maximum frame", () => {
    const big = Buffer.alloc(MAX_FRAME_PAYLOAD * 2 + 3, 7);
    const decoder = new FrameDecoder();
    const events = decoder.push(encodeData(big));
    assert.equal(
      events.reduce((s, e) => s + (e.type === "data" ? e.bytes.length : 0), 0),
      big.length,
    );
  });

  it("refuses unknown frame types, zero or oversized lengths and a FIN with a payload", () => {
    for (const bad of [
      [9, 0, 0, 0, 1],
      [0, 0, 0, 0, 0],
      [0, 0xff, 0xff, 0xff, 0xff],
      [1, 0, 0, 0, 1],
    ]) {
      const events = new FrameDecoder().push(Buffer.from(bad));
      assert.equal(events.at(-1)?.type, "error", JSON.stringify(bad));
    }
  });
});
