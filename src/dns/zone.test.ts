import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { LABEL_SERVICE_NAME } from "../api/mcs.js";
import { endpointSlice, serviceImport } from "./fixtures.js";
import { ClusterSetZone } from "./zone.js";

const http = [{ name: "http", protocol: "TCP" as const, port: 80 }];

function zoneWithClock(start = 1_000_000): { zone: ClusterSetZone; advance: (seconds: number) => void } {
  let nowMs = start * 1000;
  const zone = new ClusterSetZone({ now: () => nowMs });
  return { zone, advance: (seconds) => (nowMs += seconds * 1000) };
}

function readyIps(zone: ClusterSetZone, ns: string, svc: string): string[] {
  const entry = zone.service(ns, svc);
  return [...(entry?.slices.values() ?? [])].flatMap((s) => s.addresses.map((a) => a.ip.key));
}

describe("ClusterSetZone", () => {
  test("indexes only DNS fields of a ServiceImport, keyed case-insensitively", () => {
    const zone = new ClusterSetZone();
    zone.upsertServiceImport(
      serviceImport("Demo", "Web", "ClusterSetIP", http, ["10.0.0.1", "bogus", "fd00::1"]),
    );
    const imported = zone.service("demo", "web")?.serviceImport;
    assert.ok(imported);
    assert.equal(imported.name, "Web");
    assert.equal(imported.headless, false);
    assert.deepEqual(
      imported.ips.map((ip) => ip.key),
      ["10.0.0.1", "fd00::1"],
      "unparsable VIPs are dropped",
    );
    assert.deepEqual(imported.ports, [{ nameLower: "http", protocolLower: "tcp", port: 80 }]);
  });

  test("port protocol defaults to TCP as the CRD does", () => {
    const zone = new ClusterSetZone();
    zone.upsertServiceImport(serviceImport("ns", "s", "ClusterSetIP", [{ port: 8080 }], ["10.0.0.1"]));
    assert.equal(zone.service("ns", "s")?.serviceImport?.ports[0]?.protocolLower, "tcp");
  });

  test("keeps ready endpoints only (unset ready counts as ready) and generates hostnames", () => {
    const zone = new ClusterSetZone();
    zone.upsertEndpointSlice(
      endpointSlice("ns", "s-1", "s", "c1", [
        { addresses: ["10.0.0.1"] },
        { addresses: ["10.0.0.2"], ready: true, hostname: "web-1" },
        { addresses: ["10.0.0.3"], ready: false },
        { addresses: ["not-an-ip"] },
      ]),
    );
    const slice = zone.service("ns", "s")?.slices.get("s-1");
    assert.deepEqual(
      slice?.addresses.map((a) => `${a.hostname}=${a.ip.key}`),
      ["10-0-0-1=10.0.0.1", "web-1=10.0.0.2"],
    );
    assert.equal(slice?.clusterId, "c1");
    assert.deepEqual(
      slice?.ports,
      [{ nameLower: "", protocolLower: "", port: -1 }],
      "portless slice gets the sentinel",
    );
  });

  test("endpointPodNames uses the target Pod name when hostname is unset", () => {
    const zone = new ClusterSetZone({ endpointPodNames: true });
    zone.upsertEndpointSlice(
      endpointSlice("ns", "s-1", "s", "c1", [{ addresses: ["10.0.0.1"], podName: "web-abc" }]),
    );
    assert.equal(zone.service("ns", "s")?.slices.get("s-1")?.addresses[0]?.hostname, "web-abc");
  });

  test("FQDN slices contribute no addresses", () => {
    const zone = new ClusterSetZone();
    zone.upsertEndpointSlice(
      endpointSlice("ns", "s-1", "s", "c1", [{ addresses: ["example.com"] }], [], "FQDN"),
    );
    assert.deepEqual(readyIps(zone, "ns", "s"), []);
  });

  test("a slice that loses its service-name label is removed; a relabel moves it", () => {
    const zone = new ClusterSetZone();
    const slice = endpointSlice("ns", "slice-1", "a", "c1", [{ addresses: ["10.0.0.1"] }]);
    zone.upsertEndpointSlice(slice);
    assert.deepEqual(readyIps(zone, "ns", "a"), ["10.0.0.1"]);

    slice.metadata!.labels![LABEL_SERVICE_NAME] = "b";
    zone.upsertEndpointSlice(slice);
    assert.equal(zone.service("ns", "a"), undefined, "entry with nothing left is dropped");
    assert.deepEqual(readyIps(zone, "ns", "b"), ["10.0.0.1"]);

    delete slice.metadata!.labels![LABEL_SERVICE_NAME];
    assert.equal(zone.upsertEndpointSlice(slice), false);
    assert.equal(zone.service("ns", "b"), undefined);
    assert.equal(zone.stats().endpointSlices, 0);
  });

  test("slices may arrive before their ServiceImport, and survive its deletion", () => {
    const zone = new ClusterSetZone();
    zone.upsertEndpointSlice(endpointSlice("ns", "s-1", "s", "c1", [{ addresses: ["10.0.0.1"] }]));
    assert.equal(zone.service("ns", "s")?.serviceImport, undefined);
    zone.upsertServiceImport(serviceImport("ns", "s", "Headless", http));
    assert.equal(zone.service("ns", "s")?.serviceImport?.headless, true);
    zone.deleteServiceImport("ns", "s");
    assert.equal(zone.service("ns", "s")?.serviceImport, undefined);
    assert.deepEqual(readyIps(zone, "ns", "s"), ["10.0.0.1"]);
    zone.deleteEndpointSlice("ns", "s-1");
    assert.equal(zone.service("ns", "s"), undefined);
  });

  test("serial moves only on DNS-relevant ServiceImport/EndpointSlice changes", () => {
    const { zone, advance } = zoneWithClock(1000);
    assert.equal(zone.serial, 1000);
    advance(10);
    zone.upsertServiceImport(serviceImport("ns", "s", "ClusterSetIP", http, ["10.0.0.1"]));
    assert.equal(zone.serial, 1010);
    advance(10);
    const same = serviceImport("ns", "s", "ClusterSetIP", http, ["10.0.0.1"]);
    same.spec.sessionAffinity = "ClientIP";
    zone.upsertServiceImport(same);
    assert.equal(zone.serial, 1010, "a field DNS ignores does not bump the serial");
    zone.upsertNamespace("ns");
    assert.equal(zone.serial, 1010, "namespaces do not bump the serial (CoreDNS: only imports and slices)");

    const slice = endpointSlice("ns", "s-1", "s", "c1", [{ addresses: ["10.0.0.1"], ready: false }]);
    zone.upsertEndpointSlice(slice);
    assert.equal(zone.serial, 1020);
    advance(10);
    zone.upsertEndpointSlice(slice);
    assert.equal(zone.serial, 1020, "identical slice");
    zone.upsertEndpointSlice(endpointSlice("ns", "s-1", "s", "c1", [{ addresses: ["10.0.0.1"] }]));
    assert.equal(zone.serial, 1030, "endpoint became ready");
    advance(10);
    zone.deleteEndpointSlice("ns", "s-1");
    assert.equal(zone.serial, 1040);
    advance(10);
    zone.deleteEndpointSlice("ns", "s-1");
    zone.deleteServiceImport("ns", "missing");
    assert.equal(zone.serial, 1040, "deleting what is not there changes nothing");
  });

  test("namespaces are existence only; deleting one keeps its objects indexed", () => {
    const zone = new ClusterSetZone();
    zone.upsertNamespace({ metadata: { name: "Demo" } });
    assert.ok(zone.hasNamespace("demo"));
    zone.upsertServiceImport(serviceImport("demo", "s", "ClusterSetIP", http, ["10.0.0.1"]));
    zone.deleteNamespace("demo");
    assert.equal(zone.hasNamespace("demo"), false);
    assert.ok(zone.service("demo", "s"));
  });

  test("replace* upserts a full list and deletes what is missing", () => {
    const zone = new ClusterSetZone();
    zone.upsertServiceImport(serviceImport("ns", "old", "ClusterSetIP", http, ["10.0.0.1"]));
    zone.upsertServiceImport(serviceImport("ns", "kept", "ClusterSetIP", http, ["10.0.0.2"]));
    zone.upsertEndpointSlice(endpointSlice("ns", "old-1", "old", "c1", [{ addresses: ["10.1.0.1"] }]));
    zone.upsertNamespace("gone");

    zone.replaceServiceImports([
      serviceImport("ns", "kept", "ClusterSetIP", http, ["10.0.0.2"]),
      serviceImport("ns", "new", "Headless", http),
    ]);
    zone.replaceEndpointSlices([endpointSlice("ns", "new-1", "new", "c1", [{ addresses: ["10.1.0.2"] }])]);
    zone.replaceNamespaces(["ns"]);

    assert.equal(zone.service("ns", "old"), undefined);
    assert.ok(zone.service("ns", "kept")?.serviceImport);
    assert.deepEqual(readyIps(zone, "ns", "new"), ["10.1.0.2"]);
    assert.equal(zone.hasNamespace("gone"), false);
    assert.deepEqual(zone.stats(), {
      namespaces: 1,
      serviceImports: 2,
      endpointSlices: 1,
      readyAddresses: 1,
    });
  });

  test("objects without name or namespace are ignored", () => {
    const zone = new ClusterSetZone();
    assert.equal(
      zone.upsertServiceImport({ metadata: { name: "x" }, spec: { type: "Headless", ports: [] } }),
      false,
    );
    assert.equal(zone.upsertEndpointSlice({ addressType: "IPv4", endpoints: [] }), false);
    assert.deepEqual(zone.stats(), {
      namespaces: 0,
      serviceImports: 0,
      endpointSlices: 0,
      readyAddresses: 0,
    });
  });

  test("synced is whatever the caller last set", () => {
    const zone = new ClusterSetZone();
    assert.equal(zone.synced, false);
    zone.setSynced(true);
    assert.equal(zone.synced, true);
  });
});
