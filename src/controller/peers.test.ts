import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Cluster } from "../api/meridian.js";
import { PEERS_KEY } from "../gateway/kube-routes.js";
import { desiredPeersConfigMap, parseGatewayAddress, peerGateways } from "./peers.js";

const cluster = (
  id: string,
  gatewayAddresses?: string[],
  locality?: Cluster["spec"]["locality"],
): Cluster => ({
  metadata: { name: id },
  spec: { clusterID: id, credentials: { secretName: "s" }, gatewayAddresses, locality },
});

describe("peer gateways", () => {
  it("parses host:port and [v6]:port, and rejects anything else", () => {
    assert.deepEqual(parseGatewayAddress("172.31.0.12:15443"), { host: "172.31.0.12", port: 15443 });
    assert.deepEqual(parseGatewayAddress("[fd00::12]:15443"), { host: "fd00::12", port: 15443 });
    assert.deepEqual(parseGatewayAddress("gw.east.example:443"), { host: "gw.east.example", port: 443 });
    for (const bad of ["172.31.0.12", "fd00::12:15443", "h:0", "h:70000", ":15443", ""])
      assert.equal(parseGatewayAddress(bad), undefined, bad);
  });

  it("lists every cluster with a usable gateway address, sorted, with its locality", () => {
    const peers = peerGateways([
      cluster("west", ["172.31.0.11:15443"], { region: "eu", zone: "eu-a" }),
      cluster("east", ["nonsense", "172.31.0.12:15443"]),
      cluster("north"),
    ]);
    assert.deepEqual(peers, [
      { clusterId: "east", host: "172.31.0.12", port: 15443 },
      { clusterId: "west", host: "172.31.0.11", port: 15443, locality: { region: "eu", zone: "eu-a" } },
    ]);
    const cm = desiredPeersConfigMap([cluster("east", ["172.31.0.12:15443"])]);
    assert.equal(cm.metadata?.namespace, "meridian-system");
    assert.deepEqual(JSON.parse(cm.data![PEERS_KEY]!), [
      { clusterId: "east", host: "172.31.0.12", port: 15443 },
    ]);
  });
});
