import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { servicesTables } from "./main.js";

describe("meridian status", () => {
  it("shows which limit each gateway is refusing new connections at, and a dash for the others", () => {
    const peers = [{ clusterId: "east", available: true, probe: "healthy", consecutiveFailures: 0 }];
    const out = servicesTables(
      [],
      [],
      [],
      [
        { cluster: "west", peers, atLimit: { outbound: "open-files", inbound: "max-connections" } },
        { cluster: "east", peers: [] },
      ],
    );
    const lines = out.split("\n");
    assert.match(
      lines.find((l) => l.startsWith("CLUSTER"))!,
      /PEERS\s+REFUSING AT LIMIT/,
    );
    assert.match(
      lines.find((l) => l.startsWith("west"))!,
      /east up\s+outbound: open-files, inbound: max-connections/,
    );
    assert.match(
      lines.find((l) => l.startsWith("east"))!,
      /-\s+-\s*$/,
    );
  });
});
