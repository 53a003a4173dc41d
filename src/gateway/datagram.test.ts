import assert from "node:assert/strict";
import tls from "node:tls";
import { after, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { DATAGRAM_QUEUE_LIMIT, DatagramStream, encodeRecord, RecordDecoder } from "./datagram.js";
import type { TestGateway, UdpBackend } from "./fixtures.js";
import {
  exchange,
  makeClusterset,
  startBackend,
  startGateway,
  startUdpBackend,
  udpClient,
} from "./fixtures.js";
import type { RoutingTable } from "./routes.js";
import type { Clusterset } from "./fixtures.js";
import { decodeOpen, MAGIC } from "./protocol.js";

describe("datagram records", () => {
  it("splits records back into datagrams at any chunk boundary, empty datagrams included", () => {
    const datagrams = [
      Buffer.from("hello"),
      Buffer.alloc(0),
      Buffer.alloc(70_000 - 4_473, 9),
      Buffer.from("x"),
    ];
    const stream = Buffer.concat(datagrams.map(encodeRecord));
    for (const cut of [1, 2, 3, 7, 1000, stream.length]) {
      const decoder = new RecordDecoder();
      const out: Buffer[] = [];
      for (let i = 0; i < stream.length; i += cut) out.push(...decoder.push(stream.subarray(i, i + cut)));
      assert.deepEqual(out, datagrams, `chunks of ${cut}`);
      assert.equal(decoder.buffered, 0);
    }
  });
});

describe("DatagramStream", () => {
  it("reads what it receives as records and sends each record it is written as one datagram", async () => {
    const sent: string[] = [];
    const stream = new DatagramStream({ send: (p) => sent.push(p.toString()) });
    stream.receive(Buffer.from("ping"));
    const [chunk] = (await Promise.race([
      new Promise((r) => stream.once("data", (c: Buffer) => r([c]))),
      sleep(1000).then(() => []),
    ])) as Buffer[];
    assert.deepEqual(new RecordDecoder().push(chunk!), [Buffer.from("ping")]);
    const record = encodeRecord(Buffer.from("pong"));
    stream.write(record.subarray(0, 3));
    stream.write(Buffer.concat([record.subarray(3), encodeRecord(Buffer.from("!"))]));
    await sleep(0);
    assert.deepEqual(sent, ["pong", "!"]);
    assert.equal(stream.bytesRead, 4);
    assert.equal(stream.bytesWritten, 5);
    stream.destroy();
  });

  it("ends cleanly once a flow is idle, and ending its writes ends its reads (UDP has no half-close)", async () => {
    let released = 0;
    const idle = new DatagramStream({ send: () => {}, flowIdleMs: 60, release: () => released++ });
    idle.resume();
    const started = Date.now();
    await new Promise((r) => idle.once("end", r));
    assert.ok(Date.now() - started >= 55, "not before the idle time");
    assert.equal(released, 1);
    idle.receive(Buffer.from("late"));
    assert.equal(idle.bytesRead, 0, "an ended flow takes no more datagrams");
    idle.destroy();
    assert.equal(released, 1, "released once");

    const ended = new DatagramStream({ send: () => {} });
    ended.resume();
    const end = new Promise((r) => ended.once("end", r));
    ended.end();
    await end;
  });

  it("drops datagrams beyond its queue when nothing reads them, and says so", () => {
    let drops = 0;
    const stream = new DatagramStream({ send: () => {}, onDrop: () => drops++ });
    const datagram = Buffer.alloc(1000);
    const n = Math.ceil(DATAGRAM_QUEUE_LIMIT / 1002) + 10;
    for (let i = 0; i < n; i++) stream.receive(datagram);
    assert.ok(drops >= 9 && drops <= 11, `dropped ${drops}`);
    assert.ok(stream.readableLength <= DATAGRAM_QUEUE_LIMIT + 1002);
    stream.destroy();
  });

  it("times out like a socket: 'timeout' after that long without a datagram either way", async () => {
    const stream = new DatagramStream({ send: () => {} });
    let timedOut = 0;
    stream.setTimeout(80, () => timedOut++);
    await sleep(50);
    stream.receive(Buffer.from("activity"));
    await sleep(50);
    assert.equal(timedOut, 0, "activity re-arms the timeout");
    await sleep(80);
    assert.equal(timedOut, 1);
    stream.destroy();
  });
});

/**
 * A peer gateway from before UDP: answers probes, and closes the connection on an OPEN of a kind
 * it does not know (3, datagram), as those gateways did.
 */
async function gatewayBeforeUdp(cs: Clusterset, clusterId: string): Promise<{ port: number; close(): void }> {
  const identity = cs.identity(clusterId);
  await identity.start();
  const creds = identity.credentials();
  const server = tls.createServer(
    {
      key: creds.privateKeyPem,
      cert: creds.certPem,
      ca: cs.bundle.caPems,
      requestCert: true,
      minVersion: "TLSv1.3",
    },
    (socket) => {
      socket.on("error", () => {});
      let buf = Buffer.alloc(0);
      socket.on("data", (chunk: Buffer) => {
        buf = Buffer.concat([buf, chunk]);
        while (buf.length > 5 && buf.subarray(0, 4).equals(MAGIC)) {
          if (buf[5] !== 2) return void socket.destroy(); // only probes are known here
          const open = decodeOpen(buf);
          if (open.state !== "done") return;
          socket.write(Buffer.from([0]));
          buf = buf.subarray(open.consumed);
        }
      });
    },
  );
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    port: (server.address() as { port: number }).port,
    close: () => {
      server.close();
      identity.stop();
    },
  };
}

/** UDP through gateways, with a connection per stream and multiplexed. */
for (const multiplex of [0, 2]) {
  describe(`UDP through the gateways (${multiplex ? "multiplexed" : "a connection per stream"})`, () => {
    const cs = makeClusterset();
    const cleanups: Array<() => unknown> = [];
    after(async () => {
      for (const c of cleanups.reverse()) await c();
    });
    const udpBackend = async (name: string): Promise<UdpBackend> => {
      const b = await startUdpBackend(name);
      cleanups.push(() => b.close());
      return b;
    };
    const client = async (): Promise<Awaited<ReturnType<typeof udpClient>>> => {
      const c = await udpClient();
      cleanups.push(() => c.close());
      return c;
    };
    const gateway = async (
      clusterId: string,
      table: RoutingTable,
      limits: { udpFlowIdleMs?: number } = {},
    ): Promise<TestGateway> => {
      const g = await startGateway(cs, clusterId, table, {
        limits,
        ...(multiplex ? { pool: { multiplex } } : {}),
      });
      cleanups.push(() => g.gateway.stop(200));
      return g;
    };
    const exportingUdp = (
      backends: UdpBackend[],
      allow?: RoutingTable["exports"][number]["allow"],
    ): RoutingTable["exports"][number] => ({
      service: "shop/dns",
      port: 53,
      protocol: "UDP",
      endpoints: backends.map((b) => ({ address: "127.0.0.1", port: b.port })),
      ...(allow ? { allow } : {}),
    });
    const importingUdp = (peers: TestGateway[]): RoutingTable => ({
      peers: peers.map((p) => ({
        clusterId: p.gateway.clusterId,
        host: "127.0.0.1",
        port: p.gateway.peerPort,
      })),
      imports: [
        {
          service: "shop/dns",
          port: 53,
          protocol: "UDP",
          listenPort: 0,
          clusters: peers.map((p) => ({ clusterId: p.gateway.clusterId, readyEndpoints: 1 })),
        },
      ],
      exports: [],
    });
    const metric = (g: TestGateway, name: string, labels: Record<string, string>): Promise<number> =>
      g.gateway.metrics.value(`meridian_gateway_${name}`, labels);
    /** Payload bytes the importing gateway's finished flows to shop/dns:53/UDP sent. */
    const sentBytes = (g: TestGateway): Promise<number> =>
      metric(g, "bytes_total", { direction: "outbound", service: "shop/dns:53/UDP", flow: "sent" });

    it("carries each client's datagrams as a flow of its own, both ways, beside TCP on the same port number", async () => {
      const dns = await udpBackend("east");
      const tcp = await startBackend("east-tcp", "whoami");
      cleanups.push(() => tcp.close());
      const east = await gateway("east", {
        peers: [],
        imports: [],
        exports: [
          exportingUdp([dns]),
          { service: "shop/dns", port: 53, endpoints: [{ address: "127.0.0.1", port: tcp.port }] },
        ],
      });
      const table = importingUdp([east]);
      table.imports.push({ ...table.imports[0]!, protocol: undefined });
      const west = await gateway("west", table);
      const udpPort = west.port("shop/dns:53/UDP");
      const [one, two] = [await client(), await client()];
      assert.equal(await one.ask(udpPort, "a1"), "east a1");
      assert.equal(await two.ask(udpPort, "b1"), "east b1");
      assert.equal(await one.ask(udpPort, "a2"), "east a2");
      assert.equal(dns.sources.size, 2, "one connected socket (source port) per client flow");
      assert.equal(
        (await exchange(west.port("shop/dns:53"))).trim(),
        "east-tcp",
        "TCP 53 is a route of its own",
      );
      assert.equal(
        await metric(west, "connections_active", { direction: "outbound", service: "shop/dns:53/UDP" }),
        2,
      );
      assert.equal(await sentBytes(west), 0, "bytes are counted when a flow ends");
    });

    it("ends an idle flow cleanly on both gateways; the client's next datagram opens a new one", async () => {
      const dns = await udpBackend("east");
      const east = await gateway("east", { peers: [], imports: [], exports: [exportingUdp([dns])] });
      const west = await gateway("west", importingUdp([east]), { udpFlowIdleMs: 150 });
      const c = await client();
      const port = west.port("shop/dns:53/UDP");
      assert.equal(await c.ask(port, "first"), "east first");
      await sleep(400);
      for (const [g, direction] of [
        [west, "outbound"],
        [east, "inbound"],
      ] as const) {
        assert.equal(
          await metric(g, "connections_total", { direction, service: "shop/dns:53/UDP", outcome: "closed" }),
          1,
          `${g.gateway.clusterId}: the flow ended cleanly`,
        );
        assert.equal(await metric(g, "connections_active", { direction, service: "shop/dns:53/UDP" }), 0);
      }
      assert.equal(await sentBytes(west), "first".length, "payload bytes, not records");
      assert.equal(await c.ask(port, "again"), "east again");
      assert.equal(dns.sources.size, 2, "a new flow, from a new socket");
    });

    it("ends a route's flows after the route's own timeout, not the gateway's", async () => {
      const dns = await udpBackend("east");
      const east = await gateway("east", { peers: [], imports: [], exports: [exportingUdp([dns])] });
      const table = importingUdp([east]);
      table.imports[0]!.udpFlowIdleMs = 150;
      const west = await gateway("west", table, { udpFlowIdleMs: 60_000 });
      const c = await client();
      assert.equal(await c.ask(west.port("shop/dns:53/UDP"), "one"), "east one");
      await sleep(400);
      const active = (): Promise<number> =>
        metric(west, "connections_active", { direction: "outbound", service: "shop/dns:53/UDP" });
      assert.equal(await active(), 0, "ended after the route's 150 ms");
      // A new table with another timeout: the next flows take it.
      west.routes.set({ ...table, imports: [{ ...table.imports[0]!, udpFlowIdleMs: 60_000 }] });
      await sleep(50);
      assert.equal(await (await client()).ask(west.port("shop/dns:53/UDP"), "two"), "east two");
      await sleep(400);
      assert.equal(await active(), 1, "the new flow lives by the new timeout");
    });

    it("sends a flow to this cluster's own endpoints directly, and aborts one whose endpoint is not listening", async () => {
      const local = await udpBackend("west");
      const closed = await startUdpBackend("gone");
      await closed.close();
      const west = await gateway("west", {
        peers: [],
        imports: [
          {
            service: "shop/dns",
            port: 53,
            protocol: "UDP",
            listenPort: 0,
            clusters: [],
            localEndpoints: [{ address: "127.0.0.1", port: local.port }],
          },
          {
            service: "shop/gone",
            port: 53,
            protocol: "UDP",
            listenPort: 0,
            clusters: [],
            localEndpoints: [{ address: "127.0.0.1", port: closed.port }],
          },
        ],
        exports: [],
      });
      const c = await client();
      assert.equal(await c.ask(west.port("shop/dns:53/UDP"), "near"), "west near");
      assert.equal(await c.ask(west.port("shop/gone:53/UDP"), "anyone?", 300), undefined);
      await sleep(100);
      const aborted = { direction: "outbound", service: "shop/gone:53/UDP", outcome: "aborted" };
      assert.equal(
        await metric(west, "connections_total", aborted),
        1,
        "the port-unreachable answer ends the flow",
      );
      assert.equal(await c.ask(west.port("shop/dns:53/UDP"), "still"), "west still");
    });

    it("sends flows on from a peer gateway older than UDP, without counting it down for its other traffic", async () => {
      const northDns = await udpBackend("north");
      const north = await gateway("north", { peers: [], imports: [], exports: [exportingUdp([northDns])] });
      const old = await gatewayBeforeUdp(cs, "old");
      cleanups.push(() => old.close());
      const table = importingUdp([north]);
      table.peers.push({ clusterId: "old", host: "127.0.0.1", port: old.port });
      table.imports[0]!.clusters.push({ clusterId: "old", readyEndpoints: 1 });
      const west = await gateway("west", table);
      const answers = new Set<string | undefined>();
      for (let i = 0; i < 8; i++) answers.add(await (await client()).ask(west.port("shop/dns:53/UDP"), "q"));
      assert.deepEqual([...answers], ["north q"], "every flow answered, by north");
      const oldHealth = west.gateway.peerHealth().find((p) => p.clusterId === "old");
      assert.equal(oldHealth?.available, true, "the old peer stays in rotation for its TCP services");
      const udpRoute = west.gateway.routing().find((r) => r.protocol === "UDP")!;
      assert.deepEqual(
        udpRoute.clusters.filter((c) => c.usable).map((c) => c.clusterId),
        ["north"],
        "this service's UDP avoids the old peer for a while",
      );
    });

    it("refuses a flow the export does not allow, counted, and fails over to a cluster that allows it", async () => {
      const [eastDns, northDns] = [await udpBackend("east"), await udpBackend("north")];
      const east = await gateway("east", {
        peers: [],
        imports: [],
        exports: [exportingUdp([eastDns], [{ cluster: "north" }])],
      });
      const onlyEast = await gateway("west", importingUdp([east]));
      const c = await client();
      assert.equal(await c.ask(onlyEast.port("shop/dns:53/UDP"), "hi", 500), undefined, "refused: no answer");
      assert.ok(
        (await metric(east, "refusals_total", {
          reason: "access-denied",
          cluster: "west",
          service: "shop/dns:53/UDP",
        })) >= 1,
      );
      assert.equal(eastDns.sources.size, 0, "nothing reached the endpoint");

      const north = await gateway("north", { peers: [], imports: [], exports: [exportingUdp([northDns])] });
      const both = await gateway("west", {
        ...importingUdp([east, north]),
        imports: [
          {
            ...importingUdp([east, north]).imports[0]!,
            policy: { failover: [{ clusters: [{ cluster: "east" }] }, { clusters: [{ cluster: "north" }] }] },
          },
        ],
      });
      const answers = new Set<string | undefined>();
      for (let i = 0; i < 5; i++) answers.add(await (await client()).ask(both.port("shop/dns:53/UDP"), "q"));
      assert.deepEqual(
        [...answers],
        ["north q"],
        "east refuses each flow; its first datagram goes on to north",
      );
    });
  });
}
