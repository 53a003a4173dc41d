/**
 * Gateways with real sockets on 127.0.0.1: client → gateway A → mTLS → gateway B → backend.
 * Several gateways run in this process, each with its own metrics registry. gateway-mux.test.ts
 * runs every case again with importing gateways that multiplex (`MERIDIAN_TEST_MULTIPLEX`).
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import net from "node:net";
import tls from "node:tls";
import { after, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import type { Backend, TestGateway } from "./fixtures.js";
import { exchange, makeClusterset, startBackend, startGateway } from "./fixtures.js";
import type { RoutingTable } from "./routes.js";
import { createGatewayKeyRequest, createTrustRoot, signGatewayRequest } from "./trust.js";
import { connectionBudget, descriptorsHeld } from "./file-limit.js";
import { AT_LIMIT_MS } from "./gateway.js";
import { FileIdentity } from "./identity.js";
import { MIN_IN_FLIGHT } from "./mux-window.js";
import { encodeOpen, FIN_FRAME, FrameDecoder, ReplyStatus } from "./protocol.js";

const cs = makeClusterset();
/** Multiplexed connections per peer for every gateway these tests start (0: a connection per stream). */
const MULTIPLEX = Number(process.env["MERIDIAN_TEST_MULTIPLEX"] ?? 0);
const cleanups: Array<() => Promise<unknown>> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

async function backend(name: string, kind: Parameters<typeof startBackend>[1] = "whoami"): Promise<Backend> {
  const b = await startBackend(name, kind);
  cleanups.push(() => b.close());
  return b;
}

async function gateway(
  clusterId: string,
  table: RoutingTable,
  options: Parameters<typeof startGateway>[3] = {},
): Promise<TestGateway> {
  const g = await startGateway(cs, clusterId, table, {
    ...options,
    ...(MULTIPLEX > 0 ? { pool: { multiplex: MULTIPLEX, ...options.pool } } : {}),
  });
  cleanups.push(() => g.gateway.stop(200));
  return g;
}

const exporting = (
  service: string,
  backends: Backend[],
  allow?: RoutingTable["exports"][number]["allow"],
): RoutingTable => ({
  peers: [],
  imports: [],
  exports: [
    {
      service,
      port: 80,
      endpoints: backends.map((b) => ({ address: "127.0.0.1", port: b.port })),
      ...(allow ? { allow } : {}),
    },
  ],
});

function importing(
  service: string,
  peers: TestGateway[],
  extra: Partial<RoutingTable["imports"][number]> = {},
): RoutingTable {
  return {
    peers: peers.map((p) => ({
      clusterId: p.gateway.clusterId,
      host: "127.0.0.1",
      port: p.gateway.peerPort,
    })),
    imports: [
      {
        service,
        port: 80,
        listenPort: 0,
        clusters: peers.map((p) => ({ clusterId: p.gateway.clusterId, readyEndpoints: 1 })),
        ...extra,
      },
    ],
    exports: [],
  };
}

/** The value once it has stayed the same for `quietMs` (a pool that has stopped dialing). */
async function settled(read: () => Promise<number>, quietMs = 400): Promise<number> {
  let value = await read();
  let since = Date.now();
  const deadline = since + 10_000;
  while (Date.now() - since < quietMs) {
    assert.ok(Date.now() < deadline, "still changing after 10 s");
    await sleep(50);
    const next = await read();
    if (next !== value) [value, since] = [next, Date.now()];
  }
  return value;
}

/** Opens `n` connections one after another and counts answers by content ("" for a failure). */
async function tally(port: number, n: number): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const answer = await exchange(port).then(
      (a) => a.trim(),
      () => "",
    );
    counts[answer] = (counts[answer] ?? 0) + 1;
  }
  return counts;
}

describe("data path", () => {
  it("carries a connection through both gateways with correct half-close and byte counts", async () => {
    const sink = await backend("east", "count");
    const b = await gateway("east", exporting("shop/web", [sink]));
    const a = await gateway("west", importing("shop/web", [b]));
    const payload = Buffer.alloc(3_000_000, 7);
    const answer = await exchange(a.port("shop/web:80"), payload);
    assert.equal(answer, `${payload.length} ${createHash("sha256").update(payload).digest("hex")}\n`);
    // The backend answered after the client's FIN: half-close crossed both hops.
    assert.equal(
      await a.gateway.metrics.value("meridian_gateway_bytes_total", { direction: "outbound", flow: "sent" }),
      payload.length,
    );
    assert.equal(
      await b.gateway.metrics.value("meridian_gateway_connections_total", {
        direction: "inbound",
        cluster: "west",
        outcome: "closed",
      }),
      1,
    );
  });

  it("reuses warm authenticated connections instead of handshaking per client connection", async () => {
    const who = await backend("east");
    const b = await gateway("east", exporting("shop/who", [who]));
    const a = await gateway("west", importing("shop/who", [b]));
    assert.deepEqual(await tally(a.port("shop/who:80"), 50), { east: 50 });
    const handshakes = await a.gateway.metrics.value("meridian_gateway_tls_handshakes_total", {
      role: "client",
    });
    assert.ok(handshakes <= 8, `${handshakes} handshakes for 50 connections`);
  });

  it("holds a peer connection per concurrent stream, or multiplexes them over a few", async () => {
    const echo = await backend("east-echo", "echo");
    const b = await gateway("east", exporting("shop/echo", [echo]));
    const a = await gateway("west", importing("shop/echo", [b]));
    const port = a.port("shop/echo:80");
    const clients = await Promise.all(
      Array.from(
        { length: 40 },
        (_, i) =>
          new Promise<net.Socket>((resolve, reject) => {
            const s = net.connect({ port, host: "127.0.0.1" }, () => s.write(`client ${i};`));
            s.once("data", (d: Buffer) =>
              d.toString() === `client ${i};`
                ? resolve(s)
                : reject(new Error(`client ${i} got ${d.toString()}`)),
            );
            s.once("error", reject);
          }),
      ),
    );
    const handshakes = await b.gateway.metrics.value("meridian_gateway_tls_handshakes_total", {
      role: "server",
    });
    const gauge = (name: string) => a.gateway.metrics.value(`meridian_gateway_${name}`, { cluster: "east" });
    const openChannels = await gauge("mux_channels");
    const muxConnections = await gauge("mux_connections");
    for (const c of clients) c.destroy();
    if (MULTIPLEX > 0) {
      assert.ok(handshakes <= MULTIPLEX, `${handshakes} connections for 40 streams`);
      assert.equal(openChannels, 40, "every open stream is a channel");
      assert.ok(
        muxConnections >= 1 && muxConnections <= MULTIPLEX,
        `${muxConnections} multiplexed connections`,
      );
      let left = openChannels;
      for (let i = 0; i < 100 && left > 0; i++) {
        await sleep(20);
        left = await gauge("mux_channels");
      }
      assert.equal(left, 0, "channels still counted after their streams closed");
      // Each connection's first probe is answered at once; the gauge follows on the probe tick.
      let window = 0;
      for (let i = 0; i < 100 && window < muxConnections * MIN_IN_FLIGHT; i++) {
        await sleep(20);
        window = await gauge("mux_in_flight_window_bytes");
      }
      assert.ok(window >= muxConnections * MIN_IN_FLIGHT, `in-flight window ${window} bytes`);
    } else {
      assert.ok(handshakes >= 40, `only ${handshakes} connections for 40 concurrent streams`);
      assert.equal(openChannels + muxConnections, 0, "no multiplexing, no channels");
    }
  });

  it("falls back to a connection per stream with a peer that does not offer multiplexing", async () => {
    const echo = await backend("east-old", "echo");
    const b = await gateway("east", exporting("shop/old", [echo]), { acceptMultiplex: false });
    const a = await gateway("west", importing("shop/old", [b]), { pool: { multiplex: 2 } });
    const answers = await Promise.all(
      Array.from({ length: 12 }, (_, i) => exchange(a.port("shop/old:80"), `request ${i}`)),
    );
    assert.deepEqual(
      answers,
      Array.from({ length: 12 }, (_, i) => `request ${i}`),
    );
    const handshakes = await b.gateway.metrics.value("meridian_gateway_tls_handshakes_total", {
      role: "server",
    });
    assert.ok(
      handshakes >= 12,
      `${handshakes} connections for 12 concurrent streams: not a connection per stream`,
    );
  });

  it("serves a protocol where the server speaks first: the OPEN leaves without client bytes", async () => {
    const banner = await backend("east-banner");
    const b = await gateway("east", exporting("shop/banner", [banner]));
    const a = await gateway("west", importing("shop/banner", [b]));
    const client = net.connect(a.port("shop/banner:80"), "127.0.0.1");
    try {
      // The client writes nothing and keeps its side open: only the backend's greeting can arrive.
      const greeting = await new Promise<string>((resolve, reject) => {
        let text = "";
        client.on("data", (c: Buffer) => (text += c.toString()));
        client.on("end", () => resolve(text));
        client.on("error", reject);
        setTimeout(() => reject(new Error(`no greeting in 5 s (got ${JSON.stringify(text)})`)), 5000).unref();
      });
      assert.equal(greeting, "east-banner\n");
    } finally {
      client.destroy();
    }
  });

  it("reaches this cluster's own endpoints directly, without a peer hop", async () => {
    const local = await backend("west-local");
    const remote = await backend("east");
    const b = await gateway("east", exporting("shop/loc", [remote]));
    const a = await gateway(
      "west",
      importing("shop/loc", [b], { localEndpoints: [{ address: "127.0.0.1", port: local.port }] }),
    );
    assert.deepEqual(await tally(a.port("shop/loc:80"), 5), { "west-local": 5 });
    assert.equal(remote.connections, 0);
    // Local endpoint dies: locality falls through to the remote cluster.
    await local.close();
    assert.deepEqual(await tally(a.port("shop/loc:80"), 5), { east: 5 });
  });

  it("applies backpressure to a slow reader instead of buffering everything", async () => {
    const total = 64 * 1024 * 1024;
    let pushed = 0;
    const server = net.createServer({ allowHalfOpen: true }, (s) => {
      const chunk = Buffer.alloc(64 * 1024, 1);
      const pump = (): void => {
        while (pushed < total) {
          pushed += chunk.length;
          if (!s.write(chunk)) return void s.once("drain", pump);
        }
        s.end();
      };
      pump();
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    cleanups.push(() => new Promise((r) => server.close(r)));
    const b = await gateway(
      "east",
      exporting("shop/bulk", [{ port: (server.address() as net.AddressInfo).port } as Backend]),
    );
    const a = await gateway("west", importing("shop/bulk", [b]));
    const client = net.connect({ port: a.port("shop/bulk:80"), host: "127.0.0.1", allowHalfOpen: true });
    client.pause();
    await sleep(800);
    assert.ok(pushed < total / 2, `the backend pushed ${pushed} bytes while nobody read`);
    let received = 0;
    client.on("data", (c: Buffer) => (received += c.length));
    client.resume();
    await new Promise((r) => client.once("end", r));
    client.end();
    assert.equal(received, total);
  });

  it("closes idle connections after the idle timeout", async () => {
    const echo = await backend("east", "echo");
    const b = await gateway("east", exporting("shop/idle", [echo]));
    const a = await gateway("west", importing("shop/idle", [b]), { limits: { idleTimeoutMs: 300 } });
    const client = net.connect({ port: a.port("shop/idle:80"), host: "127.0.0.1" });
    client.on("error", () => {});
    const started = Date.now();
    await new Promise((r) => client.once("close", r));
    assert.ok(Date.now() - started < 3000);
  });

  it("refuses connections over the limit, counts them, and reports the limit for a while", async () => {
    const echo = await backend("east", "echo");
    const b = await gateway("east", exporting("shop/lim", [echo]));
    let skew = 0;
    const a = await gateway("west", importing("shop/lim", [b]), {
      limits: { maxConnections: 2 },
      clock: () => Date.now() + skew,
    });
    const port = a.port("shop/lim:80");
    const held = [net.connect({ port, host: "127.0.0.1" }), net.connect({ port, host: "127.0.0.1" })];
    for (const h of held) await new Promise((r) => h.once("connect", r));
    await sleep(200);
    assert.deepEqual(a.gateway.atLimit(), {}, "at the limit is not over it");
    assert.equal(await exchange(port, "x").catch(() => ""), "");
    assert.equal(await a.gateway.metrics.value("meridian_gateway_refusals_total", { reason: "limit" }), 1);
    assert.deepEqual(a.gateway.atLimit(), { outbound: "max-connections" });
    skew = AT_LIMIT_MS;
    assert.deepEqual(a.gateway.atLimit(), {}, "forgotten once no refusal came for a while");
    for (const h of held) h.destroy();
  });
});

describe("the open-file limit", () => {
  /** Opens `n` connections through `port` and waits for each to echo. */
  const hold = (port: number, n: number): Promise<net.Socket[]> =>
    Promise.all(
      Array.from({ length: n }, async () => {
        const s = net.connect({ port, host: "127.0.0.1" });
        s.on("error", () => {});
        s.write("hold");
        await new Promise((r) => s.once("data", r));
        return s;
      }),
    );
  /** With `n` streams held through `port`, one more does not fit, and `refusing` counts it; returns the held ones. */
  const refusedBeyond = async (port: number, n: number, refusing: TestGateway): Promise<net.Socket[]> => {
    const held = await hold(port, n);
    assert.equal(await exchange(port, "x").catch(() => ""), "", "one more stream's descriptors do not fit");
    assert.equal(
      await refusing.gateway.metrics.value("meridian_gateway_refusals_total", { reason: "limit" }),
      1,
    );
    return held;
  };
  /** With one stream held through `port`, a second does not fit, and `refusing` counts it. */
  const secondStreamRefused = async (port: number, refusing: TestGateway): Promise<void> => {
    for (const s of await refusedBeyond(port, 1, refusing)) s.destroy();
  };
  const openFileLimit = { soft: 4, hard: 4 };
  const budget = connectionBudget(openFileLimit.soft, MULTIPLEX);

  it("refuses streams from peers beyond what it leaves room for, and counts them", async () => {
    const echo = await backend("east", "echo");
    const b = await gateway("east", exporting("shop/fd-in", [echo]), { openFileLimit });
    const a = await gateway("west", importing("shop/fd-in", [b]));
    const port = a.port("shop/fd-in:80");
    const held = await refusedBeyond(port, budget, b);
    assert.deepEqual(b.gateway.atLimit(), { inbound: "open-files" });
    for (const s of held) s.destroy();
    // The importing side set east aside briefly for the refusal (passive health); then room again.
    let answer = "";
    for (const deadline = Date.now() + 5000; answer === "" && Date.now() < deadline; await sleep(100))
      answer = await exchange(port, "again").catch(() => "");
    assert.equal(answer, "again", "room again once connections close");
  });

  it("counts a peer connection of a stream's own, from a peer that does not multiplex", async () => {
    const echo = await backend("east", "echo");
    // Multiplexing itself, east expects one descriptor per stream: 3 streams in a budget of 3.
    const b = await gateway("east", exporting("shop/fd-peer", [echo]), {
      openFileLimit,
      pool: { multiplex: 2 },
    });
    const a = await gateway("west", importing("shop/fd-peer", [b]), { pool: { multiplex: 0 } });
    const port = a.port("shop/fd-peer:80");
    await secondStreamRefused(port, b);
  });

  it("counts the peer connection of a stream to a peer that does not multiplex, though this gateway does", async () => {
    const echo = await backend("east", "echo");
    const b = await gateway("east", exporting("shop/fd-old", [echo]), { acceptMultiplex: false });
    // Three descriptors: the first stream holds its client and a peer connection of its own.
    const a = await gateway("west", importing("shop/fd-old", [b]), { openFileLimit, pool: { multiplex: 2 } });
    const port = a.port("shop/fd-old:80");
    await secondStreamRefused(port, a);
  });

  it("counts the endpoint socket of a stream to this cluster's own endpoints, though this gateway multiplexes", async () => {
    const local = await backend("west-local", "echo");
    const b = await gateway("east", exporting("shop/fd-local", [await backend("east", "echo")]));
    const a = await gateway(
      "west",
      importing("shop/fd-local", [b], { localEndpoints: [{ address: "127.0.0.1", port: local.port }] }),
      { openFileLimit, pool: { multiplex: 2 } },
    );
    const port = a.port("shop/fd-local:80");
    await secondStreamRefused(port, a);
    assert.equal(local.connections, 1, "the refused client never reached the endpoint");
  });

  describe("idle connections of a stream each", () => {
    // A budget of six descriptors: three streams with connections of their own, or fewer beside idle ones.
    const roomForThree = { soft: 8, hard: 8 };
    // Probes take pooled connections too: one at start, then none while the test runs.
    const quiet = { pool: { multiplex: 0, warm: 0 }, probe: { intervalMs: 60_000 } };
    const idleTo = (g: TestGateway, cluster: string) => () =>
      g.gateway.metrics.value("meridian_gateway_pool_idle_connections", { cluster });
    /** West, importing `fromEast` from east and `fromNorth` from north. */
    const importingFromEastAndNorth = async (
      fromEast: string,
      fromNorth: string,
      options: Parameters<typeof gateway>[2],
    ): Promise<TestGateway> => {
      const east = await gateway("east", exporting(fromEast, [await backend("east", "echo")]));
      const north = await gateway("north", exporting(fromNorth, [await backend("north", "echo")]));
      const a = importing(fromEast, [east]);
      const b = importing(fromNorth, [north]);
      const table = { peers: [...a.peers, ...b.peers], imports: [...a.imports, ...b.imports], exports: [] };
      return gateway("west", table, options);
    };
    /**
     * Three streams through `first` end, leaving west's connections to east idle; three streams
     * through `second` then need the descriptors those hold. The idle connections close, and
     * `budgeted` (the gateway short of descriptors) refuses nothing.
     */
    const idleGiveWay = async (
      west: TestGateway,
      first: number,
      second: number,
      budgeted: TestGateway,
    ): Promise<void> => {
      const metric = (name: string, labels: Record<string, string>) =>
        budgeted.gateway.metrics.value(name, labels);
      const descriptors = async (kind: string) => metric("meridian_gateway_file_descriptors", { kind });
      await settled(idleTo(west, "east"));
      for (const s of await hold(first, 3)) s.end();
      assert.ok((await settled(idleTo(west, "east"))) >= 3, "west keeps its connections to east");
      assert.ok((await descriptors("idle")) >= 3, "the budgeted gateway counts them as idle");
      const streams = await hold(second, 3);
      assert.equal(await settled(idleTo(west, "east")), 0, "closed to make room for the new streams");
      assert.equal(await metric("meridian_gateway_refusals_total", { reason: "limit" }), 0);
      assert.deepEqual(
        {
          streams: await descriptors("streams"),
          idle: await descriptors("idle"),
          budget: await descriptors("budget"),
        },
        { streams: 6, idle: 0, budget: 6 },
      );
      for (const s of streams) s.end();
    };

    it("closes its own idle peer connections when streams need their descriptors", async () => {
      const west = await importingFromEastAndNorth("shop/ev-a", "shop/ev-b", {
        ...quiet,
        openFileLimit: roomForThree,
      });
      await idleGiveWay(west, west.port("shop/ev-a:80"), west.port("shop/ev-b:80"), west);
    });

    it("keeps no more warm connections than the budget has room for", async () => {
      // Four warm connections to each of two peers would be eight; the budget holds six.
      const west = await importingFromEastAndNorth("shop/ev-w1", "shop/ev-w2", {
        pool: { multiplex: 0, warm: 4 },
        openFileLimit: roomForThree,
      });
      const idle = async () => (await idleTo(west, "east")()) + (await idleTo(west, "north")());
      assert.equal(await settled(idle), 6);
    });

    it("closes peers' idle connections when streams need their descriptors", async () => {
      const east = await gateway("east", exporting("shop/ev-c", [await backend("east", "echo")]), {
        openFileLimit: roomForThree,
      });
      const west = await gateway("west", importing("shop/ev-c", [east]), quiet);
      const north = await gateway("north", importing("shop/ev-c", [east]), quiet);
      await idleGiveWay(west, west.port("shop/ev-c:80"), north.port("shop/ev-c:80"), east);
    });
  });

  it("counts both directions together against it", async () => {
    const echo = await backend("east", "echo");
    const other = await backend("west", "echo");
    const e = await gateway("east", exporting("shop/both", [echo]), {
      limits: { maxConnections: 100, descriptorBudget: 2 * descriptorsHeld(true, MULTIPLEX > 0) },
    });
    const westTable = importing("shop/both", [e]);
    const w = await gateway("west", { ...westTable, exports: exporting("shop/other", [other]).exports });
    const eastTable = importing("shop/other", [w]);
    e.routes.set({ ...eastTable, exports: exporting("shop/both", [echo]).exports });
    await sleep(100);
    const inbound = await hold(w.port("shop/both:80"), 1);
    const outbound = await hold(e.port("shop/other:80"), 1);
    assert.equal(await exchange(e.port("shop/other:80"), "x").catch(() => ""), "");
    assert.equal(await e.gateway.metrics.value("meridian_gateway_refusals_total", { reason: "limit" }), 1);
    for (const s of [...inbound, ...outbound]) s.destroy();
  });

  it("refuses local clients beyond what it leaves room for, and counts them", async () => {
    const echo = await backend("east", "echo");
    const b = await gateway("east", exporting("shop/fd-out", [echo]));
    const a = await gateway("west", importing("shop/fd-out", [b]), { openFileLimit });
    const port = a.port("shop/fd-out:80");
    const held = await refusedBeyond(port, budget, a);
    assert.deepEqual(a.gateway.atLimit(), { outbound: "open-files" });
    for (const s of held) s.destroy();
  });
});

describe("refusals", () => {
  it("refuses peers with another root, no certificate, an expired or a revoked certificate, and counts each", async () => {
    const echo = await backend("east", "echo");
    const b = await gateway("east", exporting("shop/sec", [echo]));
    const attempt = (options: tls.ConnectionOptions): Promise<void> =>
      new Promise((resolve) => {
        const s = tls.connect({
          host: "127.0.0.1",
          port: b.gateway.peerPort,
          rejectUnauthorized: false,
          ...options,
        });
        s.on("error", () => resolve());
        s.on("close", () => resolve());
        s.on("secureConnect", () => s.write("MRDN"));
      });
    const issue = (
      root: ReturnType<typeof createTrustRoot>,
      clusterId: string,
      now = new Date(),
      lifetimeSeconds = 3600,
    ) => {
      const req = createGatewayKeyRequest(cs.bundle.clusterset, clusterId);
      return {
        key: req.privateKeyPem,
        cert: signGatewayRequest(root, req.csrPem, {
          clusterset: cs.bundle.clusterset,
          clusterId,
          lifetimeSeconds,
          now,
        }),
      };
    };
    await attempt(issue(createTrustRoot(cs.bundle.clusterset), "mallory"));
    await attempt({});
    await attempt(issue(cs.root, "west", new Date(Date.now() - 7200_000)));
    const revoked = issue(cs.root, "north");
    b.gateway["o"].identity.bundle().revokedClusters = ["north"];
    await attempt(revoked);
    const count = (reason: string) => b.gateway.metrics.value("meridian_gateway_refusals_total", { reason });
    assert.equal(await count("untrusted-root"), 1);
    assert.equal(await count("no-certificate"), 1);
    assert.equal(await count("expired"), 1);
    assert.equal(await count("revoked"), 1);
    b.gateway["o"].identity.bundle().revokedClusters = [];
  });

  it("refuses at the exporting side the clusters an export does not allow (story 5), and allows the listed ones", async () => {
    const pay = await backend("payments");
    const b = await gateway(
      "pay",
      exporting("shop/payments", [pay], [{ cluster: "eu-1" }, { cluster: "eu-2" }]),
    );
    const eu = await gateway("eu-1", importing("shop/payments", [b]));
    const us = await gateway("us-1", importing("shop/payments", [b]));
    assert.deepEqual(await tally(eu.port("shop/payments:80"), 3), { payments: 3 });
    assert.deepEqual(await tally(us.port("shop/payments:80"), 2), { "": 2 });
    assert.equal(
      await b.gateway.metrics.value("meridian_gateway_refusals_total", {
        reason: "access-denied",
        cluster: "us-1",
      }),
      1,
    );
    assert.equal(pay.connections, 3);
  });

  it("lets a cluster/namespace entry in only clients its gateway places in that namespace", async () => {
    const pay = await backend("payments");
    const b = await gateway(
      "pay",
      exporting("shop/payments", [pay], [{ cluster: "eu-1", namespaces: ["web"] }]),
    );
    // Every test client is 127.0.0.1: what differs is which namespace each gateway says it is in.
    const placedIn = (namespace: string) => ({ sourceNamespaces: { namespaceOf: () => namespace } });
    const web = await gateway("eu-1", importing("shop/payments", [b]), placedIn("web"));
    const batch = await gateway("eu-1", importing("shop/payments", [b]), placedIn("batch"));
    const unknown = await gateway("eu-1", importing("shop/payments", [b]));
    const elsewhere = await gateway("eu-2", importing("shop/payments", [b]), placedIn("web"));
    assert.deepEqual(await tally(web.port("shop/payments:80"), 2), { payments: 2 });
    assert.deepEqual(await tally(batch.port("shop/payments:80"), 1), { "": 1 });
    assert.deepEqual(
      await tally(unknown.port("shop/payments:80"), 1),
      { "": 1 },
      "no namespace: fails closed",
    );
    assert.deepEqual(await tally(elsewhere.port("shop/payments:80"), 1), { "": 1 });
    assert.equal(
      await b.gateway.metrics.value("meridian_gateway_refusals_total", { reason: "access-denied" }),
      3,
    );
    assert.equal(pay.connections, 2);
  });

  it("honours a deny default for exports without an allow list", async () => {
    const svc = await backend("east");
    const b = await gateway("east", { ...exporting("shop/closed", [svc]), accessDefault: "deny" });
    const a = await gateway("west", importing("shop/closed", [b]));
    assert.deepEqual(await tally(a.port("shop/closed:80"), 1), { "": 1 });
    assert.equal(
      await b.gateway.metrics.value("meridian_gateway_refusals_total", { reason: "access-denied" }),
      1,
    );
  });
});

describe("traffic policy and health", () => {
  it("honours weights across clusters within a tolerance", async () => {
    const e = await backend("east");
    const n = await backend("north");
    const be = await gateway("east", exporting("shop/w", [e]));
    const bn = await gateway("north", exporting("shop/w", [n]));
    const a = await gateway(
      "west",
      importing("shop/w", [be, bn], {
        policy: {
          locality: "None",
          weights: [
            { cluster: "east", weight: 3 },
            { cluster: "north", weight: 1 },
          ],
        },
      }),
    );
    const counts = await tally(a.port("shop/w:80"), 200);
    assert.equal((counts["east"] ?? 0) + (counts["north"] ?? 0), 200);
    assert.ok(Math.abs((counts["east"] ?? 0) - 150) <= 10, JSON.stringify(counts));
  });

  it("fails over when all endpoints of a cluster die, then when its gateway dies, and comes back", async () => {
    const e = await backend("east");
    const n = await backend("north");
    const be = await gateway("east", exporting("shop/f", [e]));
    const bn = await gateway("north", exporting("shop/f", [n]));
    const a = await gateway(
      "west",
      importing("shop/f", [be, bn], {
        policy: { failover: [{ clusters: [{ cluster: "east" }] }, { clusters: [{ cluster: "north" }] }] },
      }),
    );
    const port = a.port("shop/f:80");
    assert.deepEqual(await tally(port, 5), { east: 5 });

    // 1. east's endpoints die; east's gateway says so and west retries north at once.
    await e.close();
    assert.deepEqual(await tally(port, 5), { north: 5 }, "no client connection fails");

    // 2. east's gateway dies: probes take it out of rotation within the 5 s bound.
    const e2 = await startBackend("east", "whoami");
    cleanups.push(() => e2.close());
    be.routes.set(exporting("shop/f", [e2]));
    await sleep(300);
    const eastPort = be.gateway.peerPort;
    const died = Date.now();
    await be.gateway.stop(100);
    while ((await a.gateway.metrics.value("meridian_gateway_peer_up", { cluster: "east" })) !== 0) {
      assert.ok(Date.now() - died < 5000, "east still in rotation after 5 s");
      await sleep(50);
    }
    const outOfRotationMs = Date.now() - died;
    assert.deepEqual(await tally(port, 5), { north: 5 });

    // 3. east's gateway restarts on the same address: back in rotation once a probe passes.
    const restarted = await startGateway(cs, "east", exporting("shop/f", [e2]), {
      peerListen: { host: "127.0.0.1", port: eastPort },
    });
    cleanups.push(() => restarted.gateway.stop(100));
    const back = Date.now();
    while ((await a.gateway.metrics.value("meridian_gateway_peer_up", { cluster: "east" })) !== 1) {
      assert.ok(Date.now() - back < 5000, "east not back after 5 s");
      await sleep(50);
    }
    const backInMs = Date.now() - back;
    assert.deepEqual(await tally(port, 5), { east: 5 });
    const routing = a.gateway.routing()[0]!;
    assert.deepEqual(
      routing.clusters.map((c) => [c.clusterId, c.share]),
      [
        ["east", 1],
        ["north", 0],
      ],
    );
    process.stderr.write(
      `# failover: out of rotation after ${outOfRotationMs} ms, back after ${backInMs} ms\n`,
    );
  });
});

describe("early data", () => {
  it("replays the client's first bytes to the next cluster when one refuses, and keeps the refused connection warm", async () => {
    const n = await backend("north", "count");
    const be = await gateway("east", exporting("shop/r", []));
    const bn = await gateway("north", exporting("shop/r", [n]));
    const a = await gateway(
      "west",
      importing("shop/r", [be, bn], {
        policy: { failover: [{ clusters: [{ cluster: "east" }] }, { clusters: [{ cluster: "north" }] }] },
      }),
      // No pool refills and no probe after the first: a probe holding the only idle connection, or
      // a refill topping up the pool, would dial a new connection that is not the refused one.
      { pool: { warm: 0 }, probe: { intervalMs: 600_000, timeoutMs: 500, unhealthyAfter: 2 } },
    );
    const eastHandshakes = (): Promise<number> =>
      be.gateway.metrics.value("meridian_gateway_tls_handshakes_total", { role: "server" });
    while ((await eastHandshakes()) === 0) await sleep(50); // the first probe's connection
    const before = await settled(eastHandshakes);
    // More than the early-data limit, sent and half-closed before any reply: east ("no
    // endpoints") gets the first 64 KiB and the client's reads pause; north gets all of it.
    const payload = Buffer.alloc(300_000, 3);
    const answer = await exchange(a.port("shop/r:80"), payload);
    assert.equal(answer, `${payload.length} ${createHash("sha256").update(payload).digest("hex")}\n`);
    assert.equal(n.connections, 1);
    // east skipped the refused stream's frames up to its FIN, so the same connection carries the
    // next stream once east has an endpoint (and its 1 s service ejection is over).
    const e = await backend("east", "count");
    be.routes.set(exporting("shop/r", [e]));
    await sleep(1100);
    const small = Buffer.from("hello");
    assert.equal(
      await exchange(a.port("shop/r:80"), small),
      `5 ${createHash("sha256").update(small).digest("hex")}\n`,
    );
    assert.equal(e.connections, 1);
    assert.equal(await eastHandshakes(), before, "no new handshake: the refused connection was reused");
  });

  it("still serves version 1 OPENs, which wait for the reply and send no FIN after a refusal", async () => {
    const who = await backend("east");
    const b = await gateway("east", exporting("shop/v1", [who]));
    const creds = cs.identity("west");
    await creds.start();
    const c = creds.credentials();
    const socket = tls.connect({
      host: "127.0.0.1",
      port: b.gateway.peerPort,
      key: c.privateKeyPem,
      cert: c.certPem,
      ca: creds.bundle().caPems,
      rejectUnauthorized: false,
    });
    cleanups.push(async () => void socket.destroy());
    await new Promise((r) => socket.once("secureConnect", r));
    const open = (service: string): Buffer => {
      const bytes = encodeOpen({ kind: "connect", service, port: 80 });
      bytes[4] = 1;
      return bytes;
    };
    const received: Buffer[] = [];
    socket.on("data", (d: Buffer) => received.push(d));
    // Refused (unknown service), then at once the next OPEN on the same connection.
    socket.write(open("shop/nope"));
    await sleep(100);
    socket.write(open("shop/v1"));
    socket.write(FIN_FRAME);
    await sleep(300);
    const all = Buffer.concat(received);
    assert.equal(all[0], ReplyStatus.unknownService);
    assert.equal(all[1], ReplyStatus.ok);
    const events = new FrameDecoder().push(all.subarray(2));
    const text = events.map((ev) => (ev.type === "data" ? ev.bytes.toString() : "")).join("");
    assert.equal(text, "east\n");
    assert.equal(events.at(-1)?.type, "fin");
  });
});

describe("operations", () => {
  it("rotates certificates under load without a failed connection", async () => {
    const who = await backend("east");
    const b = await gateway("east", exporting("shop/rot", [who]), { identity: cs.identity("east", 3) });
    const a = await gateway("west", importing("shop/rot", [b]), { identity: cs.identity("west", 3) });
    const before = {
      a: a.gateway["o"].identity.credentials().serial,
      b: b.gateway["o"].identity.credentials().serial,
    };
    const port = a.port("shop/rot:80");
    let ok = 0;
    let failed = 0;
    const until = Date.now() + 4500;
    const worker = async (): Promise<void> => {
      while (Date.now() < until) {
        const answer = await exchange(port).catch(() => "");
        if (answer.trim() === "east") ok++;
        else failed++;
      }
    };
    await Promise.all([worker(), worker(), worker(), worker()]);
    assert.notEqual(a.gateway["o"].identity.credentials().serial, before.a, "west rotated");
    assert.notEqual(b.gateway["o"].identity.credentials().serial, before.b, "east rotated");
    assert.equal(failed, 0, `${failed} failed of ${ok + failed}`);
    assert.ok(ok > 100, `${ok} connections`);
  });

  it("drains on stop: refuses new connections, lets in-flight ones finish, cuts stragglers at the deadline", async () => {
    const echo = await backend("east", "echo");
    const b = await gateway("east", exporting("shop/drain", [echo]));
    const a = await startGateway(cs, "west", importing("shop/drain", [b]));
    const port = a.port("shop/drain:80");
    const inflight = net.connect({ port, host: "127.0.0.1", allowHalfOpen: true });
    const straggler = net.connect({ port, host: "127.0.0.1", allowHalfOpen: true });
    straggler.on("error", () => {});
    for (const s of [inflight, straggler]) {
      s.write("ping");
      await new Promise((r) => s.once("data", r));
    }
    const stopping = a.gateway.stop(1500);
    await sleep(100);
    assert.equal(
      await exchange(port, "late").catch(() => ""),
      "",
      "new connections are refused while draining",
    );
    const echoed = new Promise<string>((resolve) => {
      const chunks: Buffer[] = [];
      inflight.on("data", (c: Buffer) => chunks.push(c));
      inflight.on("end", () => resolve(Buffer.concat(chunks).toString()));
    });
    inflight.end("still here");
    assert.equal(await echoed, "still here");
    const { cut } = await stopping;
    assert.ok(cut >= 1, "the straggler was cut at the deadline");
  });

  it("reads credentials from files and picks up a rotated certificate without a restart", async () => {
    const { mkdtempSync, writeFileSync, rmSync } = await import("node:fs");
    const os = await import("node:os");
    const path = await import("node:path");
    const dir = mkdtempSync(path.join(os.tmpdir(), "meridian-gw-files-"));
    cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
    const write = (lifetime: number): string => {
      const req = createGatewayKeyRequest(cs.bundle.clusterset, "east");
      const cert = signGatewayRequest(cs.root, req.csrPem, {
        clusterset: cs.bundle.clusterset,
        clusterId: "east",
        lifetimeSeconds: lifetime,
      });
      writeFileSync(path.join(dir, "tls.key"), req.privateKeyPem);
      writeFileSync(path.join(dir, "tls.crt"), cert);
      return cert;
    };
    write(3600);
    writeFileSync(path.join(dir, "ca.crt"), cs.root.certPem);
    const identity = new FileIdentity({
      clusterset: cs.bundle.clusterset,
      clusterId: "east",
      certFile: path.join(dir, "tls.crt"),
      keyFile: path.join(dir, "tls.key"),
      caFile: path.join(dir, "ca.crt"),
      pollMs: 100,
    });
    const who = await backend("east");
    const b = await gateway("east", exporting("shop/files", [who]), { identity });
    const a = await gateway("west", importing("shop/files", [b]));
    assert.deepEqual(await tally(a.port("shop/files:80"), 2), { east: 2 });
    const first = identity.credentials().serial;
    await sleep(20);
    write(7200);
    await sleep(400);
    assert.notEqual(identity.credentials().serial, first);
    a.gateway["connectors"].get("east")?.flush();
    assert.deepEqual(await tally(a.port("shop/files:80"), 2), { east: 2 });
  });
});
