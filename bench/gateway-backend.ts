/**
 * Backends for bench/gateway.ts, in their own process so their CPU and memory are not the
 * gateways': an echo server (latency, idle connections) and a minimal HTTP server that answers
 * every request and closes (new connections per second with wrk). Prints its ports as JSON.
 */
import net from "node:net";

const RESPONSE = Buffer.from("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");

function listen(server: net.Server): Promise<number> {
  return new Promise((resolve) =>
    server.listen({ port: 0, host: "127.0.0.1", backlog: 4096 }, () =>
      resolve((server.address() as net.AddressInfo).port),
    ),
  );
}

const echo = net.createServer({ allowHalfOpen: true }, (s) => {
  s.setNoDelay(true);
  s.on("error", () => {});
  s.pipe(s);
});
const http = net.createServer((s) => {
  s.on("error", () => {});
  s.once("data", () => s.end(RESPONSE));
});
const ports = { echo: await listen(echo), http: await listen(http) };
process.stdout.write(`${JSON.stringify(ports)}\n`);
process.on("SIGTERM", () => process.exit(0));
