import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { V1Pod } from "@kubernetes/client-node";
import { AddressIndex, normalizeAddress, podAddresses } from "./source-namespaces.js";

const pod = (namespace: string, name: string, ips: string[], extra: Partial<V1Pod> = {}): V1Pod => ({
  metadata: { namespace, name },
  spec: { containers: [], ...extra.spec },
  status: { phase: "Running", podIP: ips[0], podIPs: ips.map((ip) => ({ ip })), ...extra.status },
});

function indexOf(...pods: V1Pod[]): AddressIndex {
  const index = new AddressIndex();
  for (const p of pods) {
    const entry = podAddresses(p);
    if (entry) index.set(entry);
  }
  return index;
}

describe("source namespaces from pod addresses", () => {
  it("answers the namespace of a running pod's every address, IPv4-mapped ones included", () => {
    const index = indexOf(pod("web", "front-1", ["10.1.0.5", "fd00::5"]));
    assert.equal(index.namespaceOf("10.1.0.5"), "web");
    assert.equal(index.namespaceOf("::ffff:10.1.0.5"), "web");
    assert.equal(index.namespaceOf("FD00::5"), "web");
    assert.equal(index.namespaceOf("10.1.0.6"), undefined);
  });

  it("ignores host-network and finished pods, whose addresses identify nobody", () => {
    const index = indexOf(
      pod("kube-system", "node-agent", ["192.168.1.10"], { spec: { containers: [], hostNetwork: true } }),
      pod("batch", "job-1", ["10.1.0.9"], { status: { phase: "Succeeded" } }),
    );
    assert.equal(index.size, 0);
    assert.equal(index.namespaceOf("192.168.1.10"), undefined);
  });

  it("answers nothing while two namespaces claim one address, and follows moves and deletions", () => {
    const index = indexOf(pod("web", "a", ["10.1.0.7"]), pod("batch", "b", ["10.1.0.7"]));
    assert.equal(index.namespaceOf("10.1.0.7"), undefined, "ambiguous: trust neither");
    index.remove("batch/b");
    assert.equal(index.namespaceOf("10.1.0.7"), "web");
    index.set(podAddresses(pod("web", "a", ["10.1.0.8"]))!);
    assert.equal(index.namespaceOf("10.1.0.7"), undefined, "the old address is forgotten");
    assert.equal(index.namespaceOf("10.1.0.8"), "web");
    index.remove("web/a");
    assert.equal(index.size, 0);
  });

  it("leaves plain addresses as they are", () => {
    assert.equal(normalizeAddress("10.0.0.1"), "10.0.0.1");
    assert.equal(normalizeAddress("::ffff:0a00:0001"), "::ffff:0a00:0001");
  });
});
