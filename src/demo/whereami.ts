/**
 * A tiny HTTP server that says which cluster and pod answered: the demo workload of the README
 * tour and of the end-to-end tests. Run it as a pod: `meridian run east -- meridian whereami`.
 */
import http from "node:http";

export interface WhereamiAnswer {
  cluster: string;
  pod: string;
  namespace: string;
  podIP: string;
  client: string;
  path: string;
}

export function startWhereami(port: number, host = "0.0.0.0"): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    const answer: WhereamiAnswer = {
      cluster: process.env["MERIDIAN_CLUSTER"] ?? "unknown",
      pod: process.env["POD_NAME"] ?? "unknown",
      namespace: process.env["POD_NAMESPACE"] ?? "unknown",
      podIP: process.env["POD_IP"] ?? "unknown",
      client: req.socket.remoteAddress ?? "",
      path: req.url ?? "/",
    };
    const body = JSON.stringify(answer) + "\n";
    res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
    res.end(body);
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve(server));
  });
}
