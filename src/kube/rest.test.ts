import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { after, before, beforeEach, describe, it } from "node:test";
import { RestClient } from "./rest.js";

/**
 * A server that answers the first request on each connection and drops the connection when a
 * second one arrives on it, as a server does that closes an idle kept-alive connection just as the
 * client reuses it. With `dropAll` it drops every request unanswered.
 */
describe("RestClient on a kept-alive connection the server has closed", () => {
  let server: http.Server;
  let client: RestClient;
  const requestsPerSocket = new Map<Socket, number>();
  let received: string[] = [];
  let dropAll = false;

  before(async () => {
    server = http.createServer((req, res) => {
      received.push(`${req.method} ${req.url}`);
      const seen = (requestsPerSocket.get(req.socket) ?? 0) + 1;
      requestsPerSocket.set(req.socket, seen);
      if (dropAll || seen > 1) return void req.socket.destroy();
      req.resume();
      req.on("end", () => {
        res.setHeader("Content-Type", "application/json");
        if (req.url!.startsWith("/watch")) res.end('{"n":1}\n{"n":2}\n');
        else res.end(JSON.stringify({ path: req.url }));
      });
    });
    server.keepAliveTimeout = 60_000;
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const { port } = server.address() as AddressInfo;
    client = new RestClient("test", {
      server: `http://127.0.0.1:${port}`,
      applyToHTTPSOptions: () => Promise.resolve(),
    });
  });

  after(async () => {
    client.close();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  beforeEach(() => {
    client.close();
    received = [];
    dropAll = false;
  });

  it("sends a read again on a fresh connection", async () => {
    await client.request("GET", "/first");
    const answer = await client.request<{ path: string }>("GET", "/second");
    assert.equal(answer.path, "/second");
    assert.deepEqual(received, ["GET /first", "GET /second", "GET /second"]);
  });

  it("sends it again on a new connection, not on another closed one from the pool", async () => {
    await Promise.all([client.request("GET", "/a"), client.request("GET", "/b")]);
    const answer = await client.request<{ path: string }>("GET", "/c");
    assert.equal(answer.path, "/c");
    assert.deepEqual(received.slice(2), ["GET /c", "GET /c"]);
  });

  it("opens a watch again on a new connection", async () => {
    await client.request("GET", "/first");
    const lines: string[] = [];
    await client.stream("/watch", {}, (line) => lines.push(line), new AbortController().signal);
    assert.deepEqual(lines, ['{"n":1}', '{"n":2}']);
    assert.deepEqual(received, ["GET /first", "GET /watch", "GET /watch"]);
  });

  it("does not send a write twice: the error reaches the caller", async () => {
    await client.request("GET", "/first");
    await assert.rejects(client.request("POST", "/things", { body: { a: 1 } }), /socket hang up|ECONNRESET/);
    assert.deepEqual(received, ["GET /first", "POST /things"]);
  });

  it("does not retry a read that failed on a new connection", async () => {
    dropAll = true;
    await assert.rejects(client.request("GET", "/anything"), /socket hang up|ECONNRESET/);
    assert.deepEqual(received, ["GET /anything"]);
  });
});
