import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import net from "node:net";
import { describe, it } from "node:test";
import { startLink } from "./gateway-link.js";

/** A target that records, per connection, when each byte arrived, and answers the hash at the end. */
async function startTarget(): Promise<{
  port: number;
  arrivals: { at: number; bytes: number }[][];
  close: () => void;
}> {
  const arrivals: { at: number; bytes: number }[][] = [];
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    const mine: { at: number; bytes: number }[] = [];
    arrivals.push(mine);
    const hash = createHash("sha256");
    s.on("data", (c: Buffer) => {
      mine.push({ at: performance.now(), bytes: c.length });
      hash.update(c);
    });
    s.on("end", () => s.end(hash.digest("hex")));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { port: (server.address() as net.AddressInfo).port, arrivals, close: () => server.close() };
}

function send(port: number, payload: Buffer, end = true): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: "127.0.0.1", allowHalfOpen: true });
    let answer = "";
    s.on("data", (c: Buffer) => (answer += c.toString()));
    s.on("end", () => {
      s.end();
      resolve(answer);
    });
    s.on("error", reject);
    if (end) s.end(payload);
    else s.write(payload);
  });
}

describe("bench link", () => {
  it("carries every byte in order and passes the end on", async () => {
    const target = await startTarget();
    const link = await startLink(target.port, 800);
    const payload = randomBytes(2 * 2 ** 20);
    assert.equal(await send(link.port, payload), createHash("sha256").update(payload).digest("hex"));
    assert.equal(link.outbound.carried, payload.length);
    link.close();
    target.close();
  });

  it("is no faster than its rate", async () => {
    const target = await startTarget();
    const link = await startLink(target.port, 40); // 5 MB/s
    const started = performance.now();
    await send(link.port, Buffer.alloc(10 ** 6));
    // 1 MB at 5 MB/s is 200 ms; the link may burst a millisecond's worth and a quantum ahead.
    assert.ok(performance.now() - started >= 190, `1 MB in ${(performance.now() - started).toFixed(0)} ms`);
    link.close();
    target.close();
  });

  it("serves connections in turn: a short message does not wait for another's backlog", async () => {
    const target = await startTarget();
    const link = await startLink(target.port, 40);
    const backlog = send(link.port, Buffer.alloc(2 * 10 ** 6)); // 400 ms at this rate
    await new Promise((r) => setTimeout(r, 50));
    const short = send(link.port, Buffer.from("ping"));
    await short;
    const [long, ping] = target.arrivals;
    const longBytesBeforePing = long!.filter((a) => a.at <= ping![0]!.at).reduce((n, a) => n + a.bytes, 0);
    // Behind what crossed in the first 50 ms (~250 KB) and a quantum, not the whole 2 MB.
    assert.ok(longBytesBeforePing < 500_000, `${longBytesBeforePing} bytes of the backlog went first`);
    await backlog;
    link.close();
    target.close();
  });
});
