/**
 * End to end: the real server on 127.0.0.1, queried with the real `dig` binary and raw sockets.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createSocket } from "node:dgram";
import { connect, createServer } from "node:net";
import type { AddressInfo, Socket } from "node:net";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";
import dnsPacket from "dns-packet";
import { addBigHeadless, buildFixtureZone } from "./fixtures.js";
import { startDnsServer } from "./server.js";
import type { DnsQueryEvent, DnsServerHandle } from "./server.js";

const execFileAsync = promisify(execFile);
const zone = buildFixtureZone();
addBigHeadless(zone, 100);

let server: DnsServerHandle;
const events: DnsQueryEvent[] = [];
const errors: string[] = [];

before(async () => {
  server = await startDnsServer({
    host: "127.0.0.1",
    port: 0,
    zone,
    observer: { onQuery: (event) => events.push(event), onError: (_error, context) => errors.push(context) },
  });
});

after(async () => {
  await server.close();
});

/** Runs dig against the server; resolves with stdout even when dig exits non-zero. */
async function dig(...args: string[]): Promise<string> {
  try {
    const { stdout } = await execFileAsync("dig", [
      "@127.0.0.1",
      "-p",
      String(server.udpPort),
      "+time=2",
      "+tries=1",
      ...args,
    ]);
    return stdout;
  } catch (error) {
    const failed = error as { stdout?: string };
    return failed.stdout ?? "";
  }
}

const lines = (text: string): string[] => text.split("\n").filter((line) => line.trim() !== "");
const statusOf = (output: string): string | undefined => /status: (\w+)/.exec(output)?.[1];
const flagsOf = (output: string): string[] => /;; flags: ([^;]*);/.exec(output)?.[1]?.trim().split(" ") ?? [];
const countOf = (output: string, section: string): number =>
  Number(new RegExp(`${section}: (\\d+)`).exec(output)?.[1]);

function query(name: string, type: dnsPacket.RecordType, id: number): Buffer {
  return dnsPacket.encode({
    type: "query",
    id,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ name, type }],
  });
}

function frame(message: Buffer): Buffer {
  const length = Buffer.alloc(2);
  length.writeUInt16BE(message.length);
  return Buffer.concat([length, message]);
}

/** Opens a TCP connection and collects framed responses until `count` arrived or the server closes. */
function tcpSession(port: number): {
  socket: Socket;
  responses: (count: number) => Promise<Buffer[]>;
  closed: Promise<void>;
} {
  const socket = connect(port, "127.0.0.1");
  let buffer = Buffer.alloc(0);
  const received: Buffer[] = [];
  let waiter: (() => void) | undefined;
  socket.on("data", (chunk: Buffer) => {
    buffer = Buffer.concat([buffer, chunk]);
    while (buffer.length >= 2 && buffer.length >= 2 + buffer.readUInt16BE(0)) {
      received.push(buffer.subarray(2, 2 + buffer.readUInt16BE(0)));
      buffer = buffer.subarray(2 + buffer.readUInt16BE(0));
    }
    waiter?.();
  });
  socket.on("error", () => undefined);
  const closed = new Promise<void>((resolveClosed) => socket.once("close", () => resolveClosed()));
  const responses = (count: number): Promise<Buffer[]> =>
    new Promise((resolveResponses, reject) => {
      const timer = setTimeout(() => reject(new Error(`only ${received.length}/${count} responses`)), 10_000);
      const check = (): void => {
        if (received.length >= count) {
          clearTimeout(timer);
          resolveResponses(received.slice(0, count));
        }
      };
      waiter = check;
      void closed.then(check);
      check();
    });
  return { socket, responses, closed };
}

async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>(
    (_, reject) => (timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms)),
  );
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

describe("DNS server with dig", () => {
  test("port 0 gives one free port for both UDP and TCP", () => {
    assert.ok(server.udpPort > 0);
    assert.equal(server.udpPort, server.tcpPort);
  });

  test("A for a ClusterSetIP service", async () => {
    assert.deepEqual(lines(await dig("svc1.testns.svc.clusterset.local", "+short")), ["10.0.0.1"]);
  });

  test("mixed-case question: answered, and the owner name echoes the case", async () => {
    assert.deepEqual(lines(await dig("WhOaMi.Demo.svc.ClusterSet.local", "+short")), ["10.96.0.10"]);
    const answer = lines(await dig("WhOaMi.Demo.svc.ClusterSet.local", "+noall", "+answer"));
    assert.match(answer[0] ?? "", /^WhOaMi\.Demo\.svc\.ClusterSet\.local\.\s+5\s+IN\s+A\s+10\.96\.0\.10$/);
  });

  test("headless A and AAAA list the ready endpoints", async () => {
    assert.deepEqual(lines(await dig("hdls1.testns.svc.clusterset.local", "+short")).sort(), [
      "172.0.0.2",
      "172.0.0.3",
      "172.0.0.4",
      "172.0.0.5",
    ]);
    assert.deepEqual(lines(await dig("hdls1.testns.svc.clusterset.local", "AAAA", "+short")).sort(), [
      "5678:abcd::1",
      "5678:abcd::2",
    ]);
  });

  test("SRV for a named port: weight 16 targets and glue", async () => {
    const output = await dig("_http._tcp.hdls1.testns.svc.clusterset.local", "SRV");
    assert.equal(statusOf(output), "NOERROR");
    assert.equal(countOf(output, "ANSWER"), 5);
    assert.equal(countOf(output, "ADDITIONAL"), 7, "6 glue + OPT");
    assert.deepEqual(
      lines(await dig("_http._tcp.hdls1.testns.svc.clusterset.local", "SRV", "+short")).sort(),
      [
        "0 16 80 172-0-0-2.clusterid.hdls1.testns.svc.clusterset.local.",
        "0 16 80 172-0-0-3.clusterid.hdls1.testns.svc.clusterset.local.",
        "0 16 80 5678-abcd--1.clusterid.hdls1.testns.svc.clusterset.local.",
        "0 16 80 5678-abcd--2.clusterid.hdls1.testns.svc.clusterset.local.",
        "0 16 80 dup-name.clusterid.hdls1.testns.svc.clusterset.local.",
      ],
    );
  });

  test("NXDOMAIN with the SOA, NODATA, REFUSED", async () => {
    const nx = await dig("nope.testns.svc.clusterset.local");
    assert.equal(statusOf(nx), "NXDOMAIN");
    assert.ok(flagsOf(nx).includes("aa"));
    assert.match(
      nx,
      /clusterset\.local\.\s+5\s+IN\s+SOA\s+ns\.dns\.clusterset\.local\. hostmaster\.clusterset\.local\. 1499347823 7200 1800 86400 5/,
    );
    const nodata = await dig("svc1.testns.svc.clusterset.local", "AAAA");
    assert.equal(statusOf(nodata), "NOERROR");
    assert.equal(countOf(nodata, "ANSWER"), 0);
    assert.equal(countOf(nodata, "AUTHORITY"), 1);
    assert.equal(statusOf(await dig("example.com")), "REFUSED");
  });

  test("TXT dns-version", async () => {
    assert.deepEqual(lines(await dig("dns-version.clusterset.local", "TXT", "+short")), ['"1.1.0"']);
  });

  test("+bufsize=512 with +ignore shows TC and the answers that fit; +noedns too", async () => {
    for (const args of [["+bufsize=512"], ["+noedns"]]) {
      const output = await dig("big.testns.svc.clusterset.local", ...args, "+ignore");
      assert.ok(flagsOf(output).includes("tc"), `${args.join(" ")}: ${flagsOf(output).join(" ")}`);
      const answers = countOf(output, "ANSWER");
      assert.ok(answers > 10 && answers < 100, `${args.join(" ")}: ${answers} answers`);
    }
  });

  test("+bufsize=4096 fits the 100-endpoint answer in one datagram", async () => {
    const output = await dig("big.testns.svc.clusterset.local", "+bufsize=4096", "+ignore");
    assert.ok(!flagsOf(output).includes("tc"));
    assert.equal(countOf(output, "ANSWER"), 100);
  });

  test("+tcp returns the full answer", async () => {
    const output = await dig("big.testns.svc.clusterset.local", "+tcp", "+noedns");
    assert.match(output, /SERVER: 127\.0\.0\.1#\d+\(127\.0\.0\.1\) \(TCP\)/);
    assert.equal(countOf(output, "ANSWER"), 100);
  });

  test("after TC over UDP, dig retries over TCP and gets everything", async () => {
    assert.equal(lines(await dig("big.testns.svc.clusterset.local", "+bufsize=512", "+short")).length, 100);
  });

  test("before sync, NXDOMAIN becomes SERVFAIL", async () => {
    zone.setSynced(false);
    try {
      assert.equal(statusOf(await dig("nope.testns.svc.clusterset.local")), "SERVFAIL");
      assert.deepEqual(lines(await dig("svc1.testns.svc.clusterset.local", "+short")), ["10.0.0.1"]);
    } finally {
      zone.setSynced(true);
    }
  });
});

describe("DNS server over raw sockets", () => {
  test("pipelined TCP queries in one segment are all answered, in order", async () => {
    const session = tcpSession(server.tcpPort);
    const ids = [11, 12, 13];
    session.socket.write(
      Buffer.concat([
        frame(query("svc1.testns.svc.clusterset.local", "A", 11)),
        frame(query("nope.testns.svc.clusterset.local", "A", 12)),
        frame(query("hdls1.testns.svc.clusterset.local", "AAAA", 13)),
      ]),
    );
    const responses = (await session.responses(3)).map(
      (r) => dnsPacket.decode(r) as { id?: number; rcode?: string },
    );
    assert.deepEqual(
      responses.map((r) => r.id),
      ids,
    );
    assert.deepEqual(
      responses.map((r) => r.rcode),
      ["NOERROR", "NXDOMAIN", "NOERROR"],
    );
    session.socket.destroy();
  });

  test("a query dribbled in byte by byte is reassembled", async () => {
    const session = tcpSession(server.tcpPort);
    const bytes = frame(query("svc1.testns.svc.clusterset.local", "A", 21));
    for (const byte of bytes) {
      session.socket.write(Buffer.from([byte]));
      await new Promise((r) => setImmediate(r));
    }
    const [response] = await session.responses(1);
    assert.equal(dnsPacket.decode(response!).id, 21);
    session.socket.destroy();
  });

  test("TCP junk closes that connection and the server keeps answering", async () => {
    const zeroLength = tcpSession(server.tcpPort);
    zeroLength.socket.write(Buffer.from([0, 0, 0xde, 0xad, 0xbe, 0xef]));
    await withTimeout(zeroLength.closed, 10_000, "server closes after a zero-length frame");

    const junk = tcpSession(server.tcpPort);
    junk.socket.write(Buffer.from([0, 1, 0x42]));
    await withTimeout(junk.closed, 10_000, "server closes after an unanswerable message");

    const garbage = tcpSession(server.tcpPort);
    garbage.socket.write(frame(Buffer.from("this is not dns at all, but long enough to have a header")));
    const [formerr] = await garbage.responses(1);
    assert.equal(dnsPacket.decode(formerr!).type, "response");
    garbage.socket.destroy();

    const halfFrame = tcpSession(server.tcpPort);
    halfFrame.socket.end(Buffer.from([0x00, 0x50, 1, 2, 3]));
    await withTimeout(halfFrame.closed, 10_000, "server closes after the client hangs up mid-frame");

    assert.deepEqual(lines(await dig("svc1.testns.svc.clusterset.local", "+short")), ["10.0.0.1"]);
    assert.deepEqual(lines(await dig("svc1.testns.svc.clusterset.local", "+tcp", "+short")), ["10.0.0.1"]);
  });

  test("UDP junk is dropped or FORMERR'd and the server keeps answering", async () => {
    const client = createSocket("udp4");
    const replies: Buffer[] = [];
    client.on("message", (message) => replies.push(message));
    const send = (bytes: Buffer): Promise<void> =>
      new Promise((resolveSend, reject) =>
        client.send(bytes, server.udpPort, "127.0.0.1", (error) => (error ? reject(error) : resolveSend())),
      );
    await send(Buffer.from([0x01]));
    await send(Buffer.from("garbage that is long enough"));
    await send(Buffer.alloc(0));
    await send(Buffer.from([0xab, 0xcd, 0x80, 0, 0, 1]));
    await send(query("svc1.testns.svc.clusterset.local", "A", 31));
    await withTimeout(
      (async () => {
        while (!replies.some((r) => r.readUInt16BE(0) === 31)) await new Promise((r) => setTimeout(r, 10));
      })(),
      3000,
      "answer after junk",
    );
    assert.ok(replies.every((r) => dnsPacket.decode(r).type === "response"));
    assert.ok(!replies.some((r) => r.readUInt16BE(0) === 0xabcd), "a datagram with QR set is not answered");
    client.close();
  });

  test("the observer sees queries with qtype, rcode and duration", async () => {
    events.length = 0;
    await dig("nope.testns.svc.clusterset.local", "SRV");
    const event = events.find((e) => e.qtype === 33);
    assert.ok(event);
    assert.equal(event.rcode, 3);
    assert.equal(event.transport, "udp");
    assert.ok(event.durationSeconds >= 0 && event.durationSeconds < 1);
  });
});

describe("DNS server lifecycle and limits", () => {
  test("idle TCP connections are closed", async () => {
    const short = await startDnsServer({ port: 0, zone, tcpIdleTimeoutMs: 150 });
    try {
      const session = tcpSession(short.tcpPort);
      await withTimeout(session.closed, 10_000, "idle close");
    } finally {
      await short.close();
    }
  });

  test("a frame longer than maxTcpMessageBytes closes the connection", async () => {
    const strict = await startDnsServer({ port: 0, zone, maxTcpMessageBytes: 512 });
    try {
      const session = tcpSession(strict.tcpPort);
      session.socket.write(Buffer.from([0x02, 0x01]));
      await withTimeout(session.closed, 10_000, "oversized frame");
    } finally {
      await strict.close();
    }
  });

  test("an explicit port that is taken is an error; close() frees the port", async () => {
    await assert.rejects(startDnsServer({ port: server.tcpPort, zone }), /EADDRINUSE/);
    const temporary = await startDnsServer({ port: 0, zone });
    const session = tcpSession(temporary.tcpPort);
    await new Promise((r) => session.socket.once("connect", r));
    await withTimeout(temporary.close(), 10_000, "close with an open connection");
    await withTimeout(session.closed, 10_000, "connection closed by close()");
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(temporary.tcpPort, "127.0.0.1", r));
    assert.equal((blocker.address() as AddressInfo).port, temporary.tcpPort);
    await new Promise((r) => blocker.close(r));
  });

  test("a port free for TCP but taken for UDP is an error, and the TCP listener is released", async () => {
    // Other test files run beside this one and take ephemeral TCP ports: a port found taken for
    // TCP afterwards is tried again with another; a listener the server leaked fails every try.
    const attempts = 3;
    for (let attempt = 1; ; attempt++) {
      const squatter = createSocket("udp4");
      await new Promise<void>((r) => squatter.bind(0, "127.0.0.1", r));
      const port = squatter.address().port;
      try {
        await assert.rejects(startDnsServer({ port, zone }), /EADDRINUSE/);
        const probe = createServer();
        const listened = await new Promise<boolean>((resolve) => {
          probe.once("error", () => resolve(false));
          probe.listen(port, "127.0.0.1", () => resolve(true));
        });
        if (listened) {
          await new Promise((r) => probe.close(r));
          return;
        }
        assert.ok(attempt < attempts, `TCP port ${port} still taken after the server failed to start`);
      } finally {
        squatter.close();
      }
    }
  });

  test("invalid resolver options fail at start", async () => {
    await assert.rejects(
      startDnsServer({ port: 0, zone, resolve: { zone: "clusterset.local", ttl: -1 } }),
      RangeError,
    );
  });
});
