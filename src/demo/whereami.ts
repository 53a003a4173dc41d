/**
 * A tiny server that says which cluster and pod answered: the demo workload of the README tour
 * and of the end-to-end tests. Run it as a pod: `meridian run east -- meridian whereami`. It
 * answers HTTP on its TCP port and, on the same port number over UDP, each datagram with one
 * datagram (the request's text as `path`), so both protocols can be followed across clusters.
 */
import dgram from "node:dgram";
import http from "node:http";

export interface WhereamiAnswer {
  cluster: string;
  pod: string;
  namespace: string;
  podIP: string;
  client: string;
  path: string;
}

function answer(client: string, path: string): WhereamiAnswer {
  return {
    cluster: process.env["MERIDIAN_CLUSTER"] ?? "unknown",
    pod: process.env["POD_NAME"] ?? "unknown",
    namespace: process.env["POD_NAMESPACE"] ?? "unknown",
    podIP: process.env["POD_IP"] ?? "unknown",
    client,
    path,
  };
}

export interface Whereami {
  /** The TCP port (the UDP socket has the same number). */
  port: number;
  close(): Promise<void>;
}

export async function startWhereami(port: number, host = "0.0.0.0"): Promise<Whereami> {
  const server = http.createServer((req, res) => {
    const body = JSON.stringify(answer(req.socket.remoteAddress ?? "", req.url ?? "/")) + "\n";
    res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
    res.end(body);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve());
  });
  const bound = (server.address() as { port: number }).port;
  const udp = dgram.createSocket("udp4");
  udp.on("message", (request, from) => {
    udp.send(JSON.stringify(answer(from.address, request.toString().trim())) + "\n", from.port, from.address);
  });
  await new Promise<void>((resolve, reject) => {
    udp.once("error", reject);
    udp.bind(bound, host, () => resolve());
  });
  return {
    port: bound,
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await new Promise<void>((resolve) => udp.close(() => resolve()));
    },
  };
}
