import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import type { ServiceImportPort } from "../api/mcs.js";
import { importPortsOf, mergePorts, portRef, portSetKey } from "./ports.js";

const tcp42: ServiceImportPort = { name: "tcp", protocol: "TCP", port: 42 };
const udp42: ServiceImportPort = { name: "udp", protocol: "UDP", port: 42 };
const clusterA = [tcp42, udp42];

describe("mergePorts: mcs-api.md §3.5 worked examples (cluster A older)", () => {
  const examples: {
    name: string;
    clusterB: ServiceImportPort[];
    expected: ServiceImportPort[];
    servedByB: [string, string][];
  }[] = [
    {
      name: "B adds stcp/142/SCTP → union, conflict",
      clusterB: [tcp42, { name: "stcp", protocol: "SCTP", port: 142 }],
      expected: [{ name: "stcp", protocol: "SCTP", port: 142 }, tcp42, udp42],
      servedByB: [
        ["stcp/SCTP", "stcp"],
        ["tcp/TCP", "tcp"],
      ],
    },
    {
      name: "B = tcp/43 → name collides, A's ports exactly",
      clusterB: [{ name: "tcp", protocol: "TCP", port: 43 }],
      expected: [tcp42, udp42],
      servedByB: [],
    },
    {
      name: "B = tcp/4242 (target 42) → A's tcp/42 wins, :42 only reaches A",
      clusterB: [{ name: "tcp", protocol: "TCP", port: 4242 }],
      expected: [tcp42, udp42],
      servedByB: [],
    },
    {
      name: "B = tcp2/4242 → union; :42 only A, :4242 only B",
      clusterB: [{ name: "tcp2", protocol: "TCP", port: 4242 }],
      expected: [tcp42, { name: "tcp2", protocol: "TCP", port: 4242 }, udp42],
      servedByB: [["tcp2/TCP", "tcp2"]],
    },
  ];
  for (const { name, clusterB, expected, servedByB } of examples) {
    it(name, () => {
      const result = mergePorts([clusterA, clusterB]);
      assert.deepEqual(result.ports, expected);
      assert.equal(result.conflict, true);
      assert.deepEqual(result.matchesWinner, [true, false]);
      assert.deepEqual([...(result.served[0] ?? [])].sort(), [
        ["tcp/TCP", "tcp"],
        ["udp/UDP", "udp"],
      ]);
      assert.deepEqual([...(result.served[1] ?? [])].sort(), servedByB);
    });
  }
});

describe("mergePorts: other rules", () => {
  it("identical sets in any order → no conflict", () => {
    const result = mergePorts([clusterA, [udp42, tcp42]]);
    assert.equal(result.conflict, false);
    assert.deepEqual(result.ports, [tcp42, udp42]);
  });

  it("a differing appProtocol is a conflict; the older appProtocol is kept and the port served", () => {
    const result = mergePorts([[{ ...tcp42, appProtocol: "http" }], [{ ...tcp42, appProtocol: "grpc" }]]);
    assert.equal(result.conflict, true);
    assert.deepEqual(result.ports, [{ ...tcp42, appProtocol: "http" }]);
    assert.equal(result.served[1]?.get("tcp/TCP"), "tcp");
  });

  it("same (protocol, port) under another name merges into the older port's name", () => {
    const result = mergePorts([[{ name: "http", port: 80 }], [{ name: "web", port: 80 }]]);
    assert.deepEqual(result.ports, [{ name: "http", protocol: "TCP", port: 80 }]);
    assert.equal(result.served[1]?.get(portRef("web", "TCP")), "http");
    assert.equal(result.conflict, true);
  });

  it("an unnamed port cannot join named ones (Services must name every port when several)", () => {
    const unnamedFirst = mergePorts([[{ port: 80 }], [{ name: "grpc", port: 9090 }]]);
    assert.deepEqual(unnamedFirst.ports, [{ protocol: "TCP", port: 80 }]);
    assert.equal(unnamedFirst.served[1]?.size, 0);
    const namedFirst = mergePorts([[{ name: "grpc", port: 9090 }], [{ port: 80 }]]);
    assert.deepEqual(namedFirst.ports, [{ name: "grpc", protocol: "TCP", port: 9090 }]);
    const sameUnnamed = mergePorts([[{ port: 80 }], [{ port: 80 }]]);
    assert.equal(sameUnnamed.conflict, false);
    assert.equal(sameUnnamed.served[1]?.get(portRef(undefined, "TCP")), "");
  });

  it("defaults protocol to TCP when comparing", () => {
    assert.equal(portSetKey([{ name: "a", port: 1 }]), portSetKey([{ name: "a", protocol: "TCP", port: 1 }]));
  });

  it("an empty input merges to nothing", () => {
    assert.deepEqual(mergePorts([]), { ports: [], conflict: false, matchesWinner: [], served: [] });
  });
});

describe("importPortsOf", () => {
  it("keeps name, protocol, port, appProtocol and drops targetPort, nodePort and unknown protocols", () => {
    assert.deepEqual(
      importPortsOf([
        { name: "http", port: 80, targetPort: 8080, nodePort: 30080, appProtocol: "http" },
        { port: 53, protocol: "UDP", name: "" },
        { port: 1, protocol: "QUIC" },
      ]),
      [
        { name: "http", protocol: "TCP", port: 80, appProtocol: "http" },
        { protocol: "UDP", port: 53 },
      ],
    );
  });
});

describe("mergePorts properties", () => {
  const portArb = fc.record({
    name: fc.constantFrom("a", "b", "c", "d"),
    protocol: fc.constantFrom("TCP" as const, "UDP" as const),
    port: fc.constantFrom(80, 443, 8080),
  });
  // A valid Service port set: unique names, unique (protocol, port).
  const portSetArb = fc
    .uniqueArray(portArb, { selector: (p) => p.name, maxLength: 4 })
    .map((ports) =>
      ports.filter((p, i) => ports.findIndex((q) => q.protocol === p.protocol && q.port === p.port) === i),
    );

  it("yields unique names and (protocol, port); keeps every winner port; conflict iff sets differ", () => {
    fc.assert(
      fc.property(fc.array(portSetArb, { minLength: 1, maxLength: 4 }), (sets) => {
        const result = mergePorts(sets);
        const names = result.ports.map((p) => p.name ?? "");
        assert.equal(new Set(names).size, names.length);
        const protocolPorts = result.ports.map((p) => `${p.protocol}/${p.port}`);
        assert.equal(new Set(protocolPorts).size, protocolPorts.length);
        for (const port of sets[0] ?? [])
          assert.ok(result.ports.some((p) => portSetKey([p]) === portSetKey([port])));
        const keys = new Set(sets.map((s) => portSetKey(s)));
        assert.equal(result.conflict, keys.size > 1);
        // A served port always maps to a merged port of the same protocol and number.
        sets.forEach((set, i) => {
          for (const port of set) {
            const merged = result.served[i]?.get(portRef(port.name, port.protocol));
            if (merged === undefined) continue;
            const target = result.ports.find((p) => (p.name ?? "") === merged);
            assert.equal(target?.port, port.port);
            assert.equal(target?.protocol, port.protocol);
          }
        });
      }),
    );
  });
});
