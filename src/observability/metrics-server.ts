/** A small HTTP server for /metrics (Prometheus text format), /healthz and /readyz. */
import http from "node:http";
import type { Registry } from "prom-client";

export interface MetricsServer {
  port: number;
  close(): Promise<void>;
}

export function parseHostPort(value: string, flag: string): { host: string; port: number } {
  const m = /^(.*):(\d+)$/.exec(value);
  const port = m ? Number(m[2]) : NaN;
  if (!m || !(port >= 0 && port < 65536))
    throw new Error(`${flag} must be HOST:PORT (e.g. 127.0.0.1:9090), got "${value}"`);
  return { host: m[1] === "" ? "0.0.0.0" : m[1]!.replace(/^\[|\]$/g, ""), port };
}

export function startMetricsServer(
  registry: Registry,
  host: string,
  port: number,
  ready: () => boolean = () => true,
): Promise<MetricsServer> {
  const server = http.createServer((req, res) => {
    if (req.url === "/metrics") {
      registry
        .metrics()
        .then((text) => {
          res.writeHead(200, { "content-type": registry.contentType });
          res.end(text);
        })
        .catch((err: unknown) => {
          res.writeHead(500);
          res.end(String(err));
        });
      return;
    }
    if (req.url === "/healthz" || req.url === "/livez") {
      res.writeHead(200);
      res.end("ok\n");
      return;
    }
    if (req.url === "/readyz") {
      const ok = ready();
      res.writeHead(ok ? 200 : 503);
      res.end(ok ? "ok\n" : "not ready\n");
      return;
    }
    res.writeHead(404);
    res.end();
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      resolve({
        port: (server.address() as { port: number }).port,
        close: () => new Promise((r) => server.close(() => r())),
      });
    });
  });
}
