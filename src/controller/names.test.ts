import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  base32HexHash,
  derivedServiceName,
  endpointSliceName,
  isDns1035Label,
  isDnsLabel,
  isDnsSubdomain,
  isLabelValue,
  isQualifiedName,
  maxEndpointHostnameLength,
  parseServiceKey,
  serviceKey,
} from "./names.js";

describe("derivedServiceName", () => {
  // Test vectors of the mcs-api reference controller (mcs-api.md §6).
  const vectors: { namespace: string; name: string; expected: string }[] = [
    { namespace: "demo", name: "serve", expected: "derived-ovtkn0laet" },
    { namespace: "default", name: "hello", expected: "derived-k5cuvo1ge4" },
    { namespace: "my-ns", name: "my-svc", expected: "derived-a2v4k9sqn6" },
  ];
  for (const { namespace, name, expected } of vectors) {
    it(`${namespace}/${name} → ${expected}`, () => {
      assert.equal(derivedServiceName(namespace, name), expected);
    });
  }

  it("is always a valid 18-character Service name", () => {
    fc.assert(
      fc.property(fc.string(), fc.string(), (namespace, name) => {
        const derived = derivedServiceName(namespace, name);
        assert.equal(derived.length, 18);
        assert.ok(isDns1035Label(derived), derived);
      }),
    );
  });
});

describe("base32HexHash", () => {
  it("uses only the lower-case base32hex alphabet and honours the length", () => {
    fc.assert(
      fc.property(fc.string(), fc.integer({ min: 1, max: 51 }), (input, length) => {
        const hash = base32HexHash(input, length);
        assert.equal(hash.length, length);
        assert.match(hash, /^[0-9a-v]+$/);
      }),
    );
  });

  it("is a prefix-stable encoding (shorter = prefix of longer)", () => {
    assert.ok(base32HexHash("x", 20).startsWith(base32HexHash("x", 7)));
  });
});

describe("serviceKey / parseServiceKey", () => {
  it("round-trips", () => {
    assert.equal(serviceKey("ns", "svc"), "ns/svc");
    assert.deepEqual(parseServiceKey("ns/svc"), { namespace: "ns", name: "svc" });
  });
  for (const bad of ["", "ns", "/svc", "ns/", "a/b/c"]) {
    it(`rejects ${JSON.stringify(bad)}`, () => assert.equal(parseServiceKey(bad), undefined));
  }
});

describe("name validation", () => {
  const cases: { value: string; dnsLabel: boolean; dns1035: boolean; labelValue: boolean }[] = [
    { value: "web", dnsLabel: true, dns1035: true, labelValue: true },
    { value: "1web", dnsLabel: true, dns1035: false, labelValue: true },
    { value: "Web", dnsLabel: false, dns1035: false, labelValue: true },
    { value: "web-", dnsLabel: false, dns1035: false, labelValue: false },
    { value: "a".repeat(63), dnsLabel: true, dns1035: true, labelValue: true },
    { value: "a".repeat(64), dnsLabel: false, dns1035: false, labelValue: false },
    { value: "eu-1.prod", dnsLabel: false, dns1035: false, labelValue: true },
    { value: "meridian.dev/mcs-controller", dnsLabel: false, dns1035: false, labelValue: false },
    { value: "", dnsLabel: false, dns1035: false, labelValue: true },
  ];
  for (const { value, dnsLabel, dns1035, labelValue } of cases) {
    it(JSON.stringify(value.length > 20 ? `${value.slice(0, 8)}…(${value.length})` : value), () => {
      assert.equal(isDnsLabel(value), dnsLabel, "isDnsLabel");
      assert.equal(isDns1035Label(value), dns1035, "isDns1035Label");
      assert.equal(isLabelValue(value), labelValue, "isLabelValue");
    });
  }

  it("checks subdomains and qualified names", () => {
    assert.ok(isDnsSubdomain("eu-1.prod.example"));
    assert.ok(!isDnsSubdomain("eu_1.prod"));
    assert.ok(isQualifiedName("team"));
    assert.ok(isQualifiedName("example.com/team"));
    assert.ok(isQualifiedName("app.kubernetes.io/part-of"));
    assert.ok(!isQualifiedName("/team"));
    assert.ok(!isQualifiedName("Example_com/team"));
    assert.ok(!isQualifiedName("team/"));
    assert.ok(!isQualifiedName("a/b/c"));
  });
});

describe("endpointSliceName", () => {
  it("is readable for short names", () => {
    const name = endpointSliceName("ns", "web", "eu-1", "IPv4|#0");
    assert.match(name, /^web-eu-1-[0-9a-v]{10}$/);
  });

  it("is ≤ 63 characters, a valid DNS label, and distinct per discriminator, even for long inputs", () => {
    fc.assert(
      fc.property(
        fc.stringMatching(/^[a-z][-a-z0-9]{0,62}$/),
        fc.stringMatching(/^[a-z0-9][-a-z0-9.]{0,120}$/),
        (service, cluster) => {
          const a = endpointSliceName("ns", service, cluster, "IPv4|#0");
          const b = endpointSliceName("ns", service, cluster, "IPv4|#1");
          assert.ok(a.length <= 63 && isDnsSubdomain(a), a);
          assert.notEqual(a, b);
        },
      ),
    );
  });
});

describe("maxEndpointHostnameLength", () => {
  it("leaves room for a 63-character hostname with short names", () => {
    assert.equal(maxEndpointHostnameLength("ns", "web", "c1"), 63);
  });
  it("is the exact remainder of 253 characters", () => {
    const ns = "n".repeat(63);
    const svc = "s".repeat(63);
    const cluster = "c".repeat(63);
    const longest = maxEndpointHostnameLength(ns, svc, cluster);
    const fqdn = `${"h".repeat(longest)}.${cluster}.${svc}.${ns}.svc.clusterset.local`;
    assert.equal(fqdn.length, 253);
  });
});
