/**
 * The dashboard's HTTP server (plain node:http): the page, its scripts, the whole view as JSON,
 * and Server-Sent Events that push the view again whenever it changes. Read-only: it answers GET
 * and HEAD only, and holds no credentials but the hub's.
 */
import { readFile, stat } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { Logger } from "pino";
import type { RestClient } from "../kube/rest.js";
import { ClustersetCollector } from "./collector.js";
import { dashboardView, explainFrom, reachabilityOf } from "./model.js";
import { INDEX_HTML, STYLES_CSS } from "./page.js";

export interface DashboardOptions {
  hub: RestClient;
  namespace: string;
  host: string;
  port: number;
  log: Logger;
  /** Shortest time between two pushes of the view (it is sent only when it changed). */
  pushIntervalMs?: number;
}

export interface DashboardServer {
  url: string;
  port: number;
  close(): Promise<void>;
}

const WEB_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), "web");
const FROM_SOURCE = import.meta.url.endsWith(".ts");
const SECURITY_HEADERS = {
  "content-security-policy":
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
};

const transpiled = new Map<string, { mtimeMs: number; code: string }>();

/**
 * A browser module from web/: the compiled file when running from dist/, else the TypeScript
 * source transpiled on request (development through tsx, where dist/ may be stale).
 */
async function script(name: string): Promise<string | undefined> {
  // Source maps exist only for the compiled files (the browser asks for them when it finds them).
  if (!/^[a-z][a-z-]*\.js(\.map)?$/.test(name) || (FROM_SOURCE && name.endsWith(".map"))) return undefined;
  if (!FROM_SOURCE) return readFile(path.join(WEB_DIR, name), "utf8").catch(() => undefined);
  const file = path.join(WEB_DIR, name.replace(/\.js$/, ".ts"));
  const info = await stat(file).catch(() => undefined);
  if (!info) return undefined;
  const cached = transpiled.get(file);
  if (cached?.mtimeMs === info.mtimeMs) return cached.code;
  const ts = (await import("typescript")).default;
  const code = ts.transpileModule(await readFile(file, "utf8"), {
    compilerOptions: { module: ts.ModuleKind.ES2022, target: ts.ScriptTarget.ES2022 },
    fileName: file,
  }).outputText;
  transpiled.set(file, { mtimeMs: info.mtimeMs, code });
  return code;
}

export async function startDashboard(opts: DashboardOptions): Promise<DashboardServer> {
  const clients = new Set<http.ServerResponse>();
  let current = "";
  let pushTimer: NodeJS.Timeout | undefined;
  let lastPush = 0;
  let interval = opts.pushIntervalMs ?? 500;
  const render = (): string => JSON.stringify(dashboardView(collector.observe()));
  const push = (): void => {
    pushTimer = undefined;
    const started = performance.now();
    const next = render();
    lastPush = Date.now();
    // A large clusterset costs the server time and every browser bytes on each push: space pushes
    // out to at most a fifth of the server's time and about 2 MB/s per browser.
    const renderMs = performance.now() - started;
    interval = Math.max(opts.pushIntervalMs ?? 500, 5 * renderMs, next.length / 2000);
    // The time stamp alone changing is no news.
    const comparable = next.slice(next.indexOf(",")); // after {"generatedAt":"…"
    if (comparable === current) return;
    current = comparable;
    for (const res of clients) res.write(`event: view\ndata: ${next}\n\n`);
  };
  const collector = new ClustersetCollector({
    hub: opts.hub,
    namespace: opts.namespace,
    log: opts.log,
    onChange: () => {
      pushTimer ??= setTimeout(push, Math.max(50, interval - (Date.now() - lastPush)));
    },
  });
  collector.start();
  // Proxies close event streams that stay silent; a comment line keeps them open.
  const heartbeat = setInterval(() => {
    for (const res of clients) res.write(`: keep-alive\n\n`);
  }, 15_000);

  const server = http.createServer((req, res) => {
    void handle(req, res).catch((err: unknown) => {
      opts.log.error({ err, url: req.url }, "dashboard request failed");
      if (!res.headersSent) res.writeHead(500, { "content-type": "text/plain" });
      res.end("internal error\n");
    });
  });

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD", "content-type": "text/plain" });
      res.end("the dashboard is read-only\n");
      return;
    }
    const url = new URL(req.url ?? "/", "http://dashboard");
    const send = (status: number, type: string, body: string, extra: Record<string, string> = {}) => {
      res.writeHead(status, { "content-type": type, ...SECURITY_HEADERS, ...extra });
      res.end(req.method === "HEAD" ? undefined : body);
    };
    const routes: Record<string, () => void | Promise<void>> = {
      "/": () => send(200, "text/html; charset=utf-8", INDEX_HTML),
      "/assets/styles.css": () =>
        send(200, "text/css; charset=utf-8", STYLES_CSS, { "cache-control": "no-cache" }),
      "/api/view": () => send(200, "application/json", render(), { "cache-control": "no-store" }),
      "/api/explain": () => {
        const [namespace, name, from] = ["namespace", "name", "from"].map((k) => url.searchParams.get(k));
        if (!namespace || !name || !from)
          return send(400, "text/plain", "/api/explain needs namespace, name and from (a cluster)\n");
        const explanation = explainFrom(collector.observe(), namespace, name, from);
        send(200, "application/json", JSON.stringify(explanation), { "cache-control": "no-store" });
      },
      "/api/reachability": () => {
        const [namespace, name] = ["namespace", "name"].map((k) => url.searchParams.get(k));
        if (!namespace || !name)
          return send(400, "text/plain", "/api/reachability needs namespace and name\n");
        const verdicts = reachabilityOf(collector.observe(), namespace, name);
        send(200, "application/json", JSON.stringify(verdicts), { "cache-control": "no-store" });
      },
      "/api/events": () => {
        res.writeHead(200, {
          "content-type": "text/event-stream",
          "cache-control": "no-store",
          connection: "keep-alive",
          ...SECURITY_HEADERS,
        });
        res.write(`retry: 2000\nevent: view\ndata: ${render()}\n\n`);
        clients.add(res);
        req.once("close", () => clients.delete(res));
      },
      "/healthz": () => send(200, "text/plain", "ok\n"),
    };
    const route = routes[url.pathname === "/index.html" ? "/" : url.pathname];
    if (route) return route();
    if (!url.pathname.startsWith("/assets/")) return send(404, "text/plain", "not found\n");
    const code = await script(url.pathname.slice("/assets/".length));
    if (code === undefined) send(404, "text/plain", "not found\n");
    else {
      const type = url.pathname.endsWith(".map") ? "application/json" : "text/javascript; charset=utf-8";
      send(200, type, code, { "cache-control": "no-cache" });
    }
  }

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port, opts.host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const host = opts.host.includes(":") ? `[${opts.host}]` : opts.host;
  return {
    url: `http://${host === "0.0.0.0" ? "127.0.0.1" : host}:${port}/`,
    port,
    async close() {
      clearInterval(heartbeat);
      clearTimeout(pushTimer);
      for (const res of clients) res.end();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await collector.stop();
    },
  };
}
