import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { hostnameFromIp, parseIp } from "./ip.js";

describe("parseIp", () => {
  test("IPv4 becomes 4 bytes and a dotted key", () => {
    const ip = parseIp("172.0.0.2");
    assert.equal(ip?.family, 4);
    assert.equal(ip?.key, "172.0.0.2");
    assert.deepEqual([...(ip?.bytes ?? [])], [172, 0, 0, 2]);
  });

  test("IPv6 forms that denote the same address get the same RFC 5952 key", () => {
    for (const text of ["5678:abcd::1", "5678:ABCD:0:0:0:0:0:1", "5678:abcd:0000::0001"]) {
      assert.equal(parseIp(text)?.key, "5678:abcd::1", text);
    }
    assert.equal(parseIp("::")?.key, "::");
    assert.equal(parseIp("1:0:0:2:0:0:0:3")?.key, "1:0:0:2::3");
    assert.equal(parseIp("fd00::")?.key, "fd00::");
    assert.equal(parseIp("::1:2:3.4.5.6")?.key, "::1:2:304:506");
    assert.deepEqual(
      [...(parseIp("10::3")?.bytes ?? [])],
      [0, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3],
    );
  });

  test("IPv4-mapped IPv6 is treated as IPv4, as Go's To4 does in CoreDNS", () => {
    const ip = parseIp("::ffff:10.1.2.3");
    assert.equal(ip?.family, 4);
    assert.equal(ip?.key, "10.1.2.3");
  });

  test("rejects non-addresses, zone ids and leading-zero octets", () => {
    for (const text of ["", "host", "1.2.3", "1.2.3.04", "fe80::1%eth0", "1::2::3", " 1.2.3.4"]) {
      assert.equal(parseIp(text), undefined, text);
    }
  });

  test("bytes round-trip through Node's own formatting for random IPv6 addresses", () => {
    fc.assert(
      fc.property(fc.ipV6(), (text) => {
        const ip = parseIp(text);
        assert.ok(ip, text);
        if (ip.family === 6) {
          const expanded = Array.from({ length: 8 }, (_, i) =>
            ((ip.bytes[2 * i]! << 8) | ip.bytes[2 * i + 1]!).toString(16),
          );
          assert.deepEqual(parseIp(expanded.join(":"))?.key, ip.key);
          assert.equal(parseIp(ip.key)?.key, ip.key);
        }
      }),
    );
  });
});

describe("hostnameFromIp", () => {
  test("IPv4 dots become dashes", () => {
    assert.equal(hostnameFromIp("172.0.0.2"), "172-0-0-2");
  });
  test("IPv6 colons become dashes, from the raw text", () => {
    assert.equal(hostnameFromIp("5678:abcd::1"), "5678-abcd--1");
  });
  test("an IPv6 form ending in '-' gets a trailing 0 (native CoreDNS)", () => {
    assert.equal(hostnameFromIp("fd00::"), "fd00--0");
  });
});
