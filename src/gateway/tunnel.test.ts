import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Duplex } from "node:stream";
import { recordWrites, tcpPair } from "./fixtures.js";
import { encodeData } from "./protocol.js";
import { bridge } from "./tunnel.js";

const nextTurn = (): Promise<void> => new Promise((r) => setImmediate(r));

describe("bridge", () => {
  it("writes a bulk frame's short tail with the bytes after it, not in a write of its own", async () => {
    const { client: backend, wire, close } = await tcpPair();
    wire.resume();
    // The tunnel's bytes as a TLS socket hands them on: a record at a time, cut anywhere.
    const tunnel = new Duplex({ read() {}, write: (_chunk, _encoding, callback) => callback() });
    try {
      const streamed = bridge(backend, tunnel, 60_000, { role: "exporting", initial: Buffer.alloc(0) });
      await nextTurn();
      const writes = recordWrites(backend);
      const [first, second] = [encodeData(Buffer.alloc(20_000, 1)), encodeData(Buffer.alloc(20_000, 2))];
      tunnel.push(first.subarray(0, 16_384));
      await nextTurn();
      // The next read: the first frame's last 3,621 bytes, then all of the second.
      tunnel.push(Buffer.concat([first.subarray(16_384), second]));
      await nextTurn();
      assert.deepEqual(writes, [16_379, 3_621 + 20_000]);
      tunnel.destroy();
      await streamed;
    } finally {
      close();
    }
  });
});
