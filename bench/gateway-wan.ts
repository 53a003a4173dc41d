/**
 * What early data buys between distant clusters, which the loopback benchmark cannot show: a
 * delaying TCP relay (`--delay` ms each way) between gateway A and gateway B, a warm pool, an echo
 * backend, and the time from a client's connect to the first byte of the answer to its first
 * write. Without early data that takes two round trips between the gateways (OPEN, reply, then
 * the bytes); with it, one.
 *
 *   node --import tsx bench/gateway-wan.ts [--delay 10] [--connections 30]
 */
import net from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import { makeClusterset, startBackend, startGateway } from "../src/gateway/fixtures.js";

const { values } = parseArgs({
  options: { delay: { type: "string", default: "10" }, connections: { type: "string", default: "30" } },
});
const ONE_WAY_MS = Number(values.delay);
const N = Number(values.connections);

const cs = makeClusterset();
const echo = await startBackend("east", "echo");
const b = await startGateway(cs, "east", {
  peers: [],
  imports: [],
  exports: [{ service: "bench/echo", port: 80, endpoints: [{ address: "127.0.0.1", port: echo.port }] }],
});

/** Forwards each chunk, and each end, after the delay, keeping order. */
const relay = net.createServer({ allowHalfOpen: true }, (c) => {
  const u = net.connect({ port: b.gateway.peerPort, host: "127.0.0.1", allowHalfOpen: true, noDelay: true });
  c.setNoDelay(true);
  const pipe = (from: net.Socket, to: net.Socket): void => {
    from.on("data", (d: Buffer) => setTimeout(() => to.write(d), ONE_WAY_MS));
    from.on("end", () => setTimeout(() => to.end(), ONE_WAY_MS));
    from.on("error", () => to.destroy());
    from.on("close", () => setTimeout(() => to.destroy(), ONE_WAY_MS + 5));
  };
  pipe(c, u);
  pipe(u, c);
});
await new Promise<void>((r) => relay.listen(0, "127.0.0.1", r));
const relayPort = (relay.address() as net.AddressInfo).port;
const a = await startGateway(
  cs,
  "west",
  {
    peers: [{ clusterId: "east", host: "127.0.0.1", port: relayPort }],
    imports: [
      {
        service: "bench/echo",
        port: 80,
        listenPort: 0,
        clusters: [{ clusterId: "east", readyEndpoints: 1 }],
      },
    ],
    exports: [],
  },
  { probe: { intervalMs: 1000, timeoutMs: 1000 + 4 * ONE_WAY_MS, unhealthyAfter: 2 } },
);
await sleep(1000 + 10 * ONE_WAY_MS); // warm pool

const times: number[] = [];
for (let i = 0; i < N; i++) {
  const t = process.hrtime.bigint();
  await new Promise<void>((resolve, reject) => {
    const s = net.connect({ port: a.port("bench/echo:80"), host: "127.0.0.1", noDelay: true }, () =>
      s.write("GET / HTTP/1.1\r\n\r\n"),
    );
    s.once("data", () => {
      s.destroy();
      resolve();
    });
    s.on("error", reject);
  });
  times.push(Number(process.hrtime.bigint() - t) / 1e6);
  await sleep(20);
}
times.sort((x, y) => x - y);
const at = (p: number): string => times[Math.min(N - 1, Math.floor(p * N))]!.toFixed(1);
process.stdout.write(
  `${JSON.stringify({ oneWayDelayMs: ONE_WAY_MS, roundTripMs: 2 * ONE_WAY_MS, connections: N, firstAnswerMs: { min: at(0), p50: at(0.5), max: times[N - 1]!.toFixed(1) } })}\n`,
);
await a.gateway.stop(100);
await b.gateway.stop(100);
await echo.close();
relay.close();
