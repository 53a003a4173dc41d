/**
 * Backends for bench/gateway.ts, in their own process so their CPU and memory are not the
 * gateways': an echo server (latency, idle connections) and a minimal HTTP server that answers
 * every request and closes (new connections per second with wrk). Prints its ports as JSON.
 *
 *   gateway-backend.ts [--host 127.0.0.1] [--echo PORT] [--http PORT]   (ports default to free ones)
 */
import net from "node:net";
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: {
    host: { type: "string", default: "127.0.0.1" },
    echo: { type: "string", default: "0" },
    http: { type: "string", default: "0" },
  },
});

const RESPONSE = Buffer.from("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");

function listen(server: net.Server, port: string): Promise<number> {
  return new Promise((resolve) =>
    server.listen({ port: Number(port), host: values.host, backlog: 4096 }, () =>
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
const ports = { echo: await listen(echo, values.echo), http: await listen(http, values.http) };
process.stdout.write(`${JSON.stringify(ports)}\n`);
process.on("SIGTERM", () => process.exit(0));
