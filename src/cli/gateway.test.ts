import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { gatewaySettings, type RunOptions } from "./gateway.js";

/** `gateway run`'s options as commander hands them over with every default. */
const defaults: RunOptions = {
  clusterId: "east",
  clusterset: "demo",
  listenPeer: "0.0.0.0:15443",
  listenLocal: "127.0.0.1",
  sourceNamespaces: true,
  accessDefault: "allow",
  certLifetime: "86400",
  idleTimeout: "3600",
  udpFlowTimeout: "30",
  drainTimeout: "10",
  probeInterval: "1",
  multiplex: "2",
};

describe("gateway run's flags", () => {
  it("become the gateway's limits, probe interval and locality", () => {
    const settings = gatewaySettings({
      ...defaults,
      region: "eu",
      zone: "eu-1",
      maxConnections: "500",
      udpFlowTimeout: "1.5",
    });
    assert.deepEqual(settings.limits, { maxConnections: 500, idleTimeoutMs: 3_600_000, udpFlowIdleMs: 1500 });
    assert.deepEqual(settings.probe, { intervalMs: 1000 });
    assert.deepEqual(settings.locality, { region: "eu", zone: "eu-1" });
    assert.equal(settings.prepareListenHost, undefined);
    assert.deepEqual(settings.pool, { multiplex: 2 });
  });

  it("leaves the connections per direction to the gateway without --max-connections", () => {
    assert.deepEqual(gatewaySettings(defaults).limits, { idleTimeoutMs: 3_600_000, udpFlowIdleMs: 30_000 });
  });

  it("takes --multiplex 0 for a connection per stream", () => {
    assert.deepEqual(gatewaySettings({ ...defaults, multiplex: "0" }).pool, { multiplex: 0 });
  });

  for (const [flag, option, value, message] of [
    [
      "--max-connections",
      "maxConnections",
      "lots",
      /--max-connections must be a whole number above 0, got "lots"/,
    ],
    ["--max-connections", "maxConnections", "0", /--max-connections must be a whole number above 0, got "0"/],
    ["--max-connections", "maxConnections", "2.5", /--max-connections must be a whole number above 0/],
    ["--idle-timeout", "idleTimeout", "-1", /--idle-timeout must be a positive number of seconds, got "-1"/],
    [
      "--udp-flow-timeout",
      "udpFlowTimeout",
      "0",
      /--udp-flow-timeout must be a positive number of seconds, got "0"/,
    ],
    ["--probe-interval", "probeInterval", "soon", /--probe-interval must be a positive number of seconds/],
    ["--multiplex", "multiplex", "-1", /--multiplex must be a whole number \(0 or more\), got "-1"/],
    ["--multiplex", "multiplex", "two", /--multiplex must be a whole number \(0 or more\), got "two"/],
  ] as const) {
    it(`refuses ${flag} ${value} with a message naming the flag`, () => {
      assert.throws(() => gatewaySettings({ ...defaults, [option]: value }), message);
    });
  }
});
