/**
 * A small REST client for one cluster: JSON requests and line-streamed watches over one keep-alive
 * HTTPS agent. Authentication comes from client-node's KubeConfig (certificates, tokens, exec
 * plugins), but connections are ours: client-node 1.4 builds a new agent for every request, which
 * leaks sockets on watch reconnects.
 */
import https from "node:https";
import http from "node:http";
import type { KubeConfig } from "@kubernetes/client-node";
import type { ClusterCredentials } from "./credentials.js";

export class ApiError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

export interface RequestOptions {
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  contentType?: string;
  timeoutMs?: number;
  signal?: AbortSignal;
}

export class RestClient {
  private agent: https.Agent | http.Agent | undefined;
  readonly server: URL;

  private readonly credentials: ClusterCredentials;

  /** From client-node's KubeConfig (its current context), or from lighter ClusterCredentials. */
  constructor(
    readonly cluster: string,
    source: KubeConfig | ClusterCredentials,
    agentOptions: { maxSockets?: number } = {},
  ) {
    this.credentials =
      "getCurrentCluster" in source
        ? {
            server: source.getCurrentCluster()?.server ?? "",
            applyToHTTPSOptions: (o) => source.applyToHTTPSOptions(o),
          }
        : source;
    if (!this.credentials.server) throw new Error(`kubeconfig for ${cluster} names no server`);
    this.server = new URL(this.credentials.server);
    this.maxSockets = agentOptions.maxSockets ?? 64;
  }

  private readonly maxSockets: number;

  private async options(method: string, path: string, opts: RequestOptions): Promise<https.RequestOptions> {
    const url = new URL(path, this.server);
    for (const [k, v] of Object.entries(opts.query ?? {}))
      if (v !== undefined) url.searchParams.set(k, String(v));
    const base: https.RequestOptions = {
      method,
      protocol: url.protocol,
      hostname: url.hostname,
      port: url.port,
      path: url.pathname + url.search,
      headers: { Accept: "application/json" },
    };
    await this.credentials.applyToHTTPSOptions(base);
    if (this.credentials.socketPath) {
      // Node connects to socketPath instead of host:port; the certificate is still checked
      // against the server URL's host name.
      base.socketPath = this.credentials.socketPath;
      base.servername = url.hostname;
      delete base.port;
      delete base.hostname;
      (base.headers as Record<string, string>)["Host"] = url.host;
    }
    this.agent ??=
      url.protocol === "https:"
        ? new https.Agent({
            keepAlive: true,
            maxSockets: this.maxSockets,
            ca: base.ca,
            cert: base.cert,
            key: base.key,
            rejectUnauthorized: base.rejectUnauthorized ?? true,
          })
        : new http.Agent({ keepAlive: true, maxSockets: this.maxSockets });
    base.agent = this.agent;
    if (opts.body !== undefined) {
      (base.headers as Record<string, string>)["Content-Type"] = opts.contentType ?? "application/json";
    }
    return base;
  }

  /**
   * One JSON request; resolves with the parsed body, rejects with ApiError on a non-2xx status.
   * A read whose kept-alive connection turns out closed (the server dropped it while idle, racing
   * the request) is sent once more on a new connection (`retryStale`).
   */
  async request<T>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
    const options = await this.options(method, path, opts);
    const payload =
      opts.body === undefined
        ? undefined
        : typeof opts.body === "string"
          ? opts.body
          : JSON.stringify(opts.body);
    return retryStale(options, (o) => this.send<T>(`${method} ${path}`, o, payload, opts));
  }

  private send<T>(
    what: string,
    options: https.RequestOptions,
    payload: string | undefined,
    opts: RequestOptions,
  ): Promise<T> {
    return this.exchange<T>(
      options,
      opts.signal,
      (res, resolve, reject) => {
        void readBody(res).then((text) => {
          const status = res.statusCode ?? 0;
          if (status < 200 || status >= 300) return reject(toApiError(status, text, what));
          // Health endpoints (/readyz, /livez) answer in plain text.
          if (!(res.headers["content-type"] ?? "").includes("json")) return resolve(text as T);
          try {
            resolve((text ? JSON.parse(text) : {}) as T);
          } catch (err) {
            reject(new Error(`${this.cluster}: ${what}: unparsable response`, { cause: err }));
          }
        }, reject);
      },
      (req) => {
        req.setTimeout(opts.timeoutMs ?? 30_000, () =>
          req.destroy(new Error(`${this.cluster}: ${what}: timed out`)),
        );
        req.end(payload);
      },
    );
  }

  /**
   * A streaming GET: calls `onLine` for every newline-terminated line until the server ends the
   * response (resolves) or the request fails or is aborted (rejects). Like `request`, it is sent
   * again on a new connection when its kept-alive one turns out closed.
   */
  async stream(
    path: string,
    query: RequestOptions["query"],
    onLine: (line: string) => void,
    signal: AbortSignal,
  ): Promise<void> {
    const options = await this.options("GET", path, { query });
    return retryStale(options, (o) => this.openStream(path, o, onLine, signal));
  }

  private openStream(
    path: string,
    options: https.RequestOptions,
    onLine: (line: string) => void,
    signal: AbortSignal,
  ): Promise<void> {
    return this.exchange<void>(
      options,
      signal,
      (res, resolve, reject) => {
        const status = res.statusCode ?? 0;
        if (status < 200 || status >= 300) {
          void readBody(res).then((text) => reject(toApiError(status, text, `watch ${path}`)), reject);
          return;
        }
        let pending = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          pending += chunk;
          let nl: number;
          while ((nl = pending.indexOf("\n")) >= 0) {
            const line = pending.slice(0, nl);
            pending = pending.slice(nl + 1);
            if (line.length > 0) onLine(line);
          }
        });
        res.on("end", () => resolve());
        res.on("error", reject);
        res.on("aborted", () => reject(new Error("watch stream aborted")));
      },
      (req) => req.end(),
    );
  }

  /**
   * Sends one request and settles with what `onResponse` makes of the answer. A failure before
   * any answer on a kept-alive connection is told apart (`failure`), so `retryStale` can resend.
   */
  private exchange<T>(
    options: https.RequestOptions,
    signal: AbortSignal | undefined,
    onResponse: (
      res: http.IncomingMessage,
      resolve: (value: T) => void,
      reject: (err: unknown) => void,
    ) => void,
    send: (req: http.ClientRequest) => void,
  ): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let answered = false;
      const req = (this.server.protocol === "https:" ? https : http).request(
        { ...options, signal },
        (res) => {
          answered = true;
          onResponse(res, resolve, reject);
        },
      );
      req.on("error", (err) => reject(failure(req, answered, err)));
      send(req);
    });
  }

  close(): void {
    this.agent?.destroy();
    this.agent = undefined;
  }
}

/** Reads, which the server cannot have acted on when the request never reached it. */
const RETRYABLE_METHODS = new Set(["GET", "HEAD"]);

/** The request went out on a kept-alive connection the server had already closed. */
class StaleConnectionError extends Error {
  constructor(cause: NodeJS.ErrnoException) {
    super(cause.message, { cause });
    this.name = "StaleConnectionError";
  }
}

/** A request's error; the server closing a kept-alive connection under it is told apart. */
function failure(req: http.ClientRequest, answered: boolean, err: NodeJS.ErrnoException): Error {
  const stale = !answered && req.reusedSocket && (err.code === "ECONNRESET" || err.code === "EPIPE");
  return stale ? new StaleConnectionError(err) : err;
}

/**
 * Runs `attempt`, and once more on a new connection if it went out on a kept-alive one the server
 * had closed: a read the server never saw. A write is not repeated; its error reaches the caller.
 */
async function retryStale<T>(
  options: https.RequestOptions,
  attempt: (options: https.RequestOptions) => Promise<T>,
): Promise<T> {
  try {
    return await attempt(options);
  } catch (err) {
    if (!(err instanceof StaleConnectionError)) throw err;
    if (!RETRYABLE_METHODS.has(options.method ?? "GET")) throw err.cause;
    // Not from the pool, where more connections the server closed may be waiting.
    return attempt({ ...options, agent: false });
  }
}

/** A whole response body as text. */
function readBody(res: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    res.on("data", (c: Buffer) => chunks.push(c));
    res.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    res.on("error", reject);
  });
}

function toApiError(status: number, text: string, what: string): ApiError {
  try {
    const s = JSON.parse(text) as { reason?: string; message?: string; details?: unknown };
    return new ApiError(status, s.reason ?? "", `${what}: ${s.message ?? text} (HTTP ${status})`, s.details);
  } catch {
    return new ApiError(status, "", `${what}: HTTP ${status} ${text.slice(0, 200)}`);
  }
}

/** API paths for a resource. */
export interface ResourceRef {
  group: string;
  version: string;
  plural: string;
  namespaced: boolean;
}

export function resourcePath(
  r: ResourceRef,
  namespace?: string,
  name?: string,
  subresource?: string,
): string {
  const base = r.group === "" ? `/api/${r.version}` : `/apis/${r.group}/${r.version}`;
  const ns = r.namespaced && namespace ? `/namespaces/${encodeURIComponent(namespace)}` : "";
  const n = name ? `/${encodeURIComponent(name)}` : "";
  const sub = subresource ? `/${subresource}` : "";
  return `${base}${ns}/${r.plural}${n}${sub}`;
}

export const Resources = {
  namespaces: { group: "", version: "v1", plural: "namespaces", namespaced: false },
  services: { group: "", version: "v1", plural: "services", namespaced: true },
  pods: { group: "", version: "v1", plural: "pods", namespaced: true },
  secrets: { group: "", version: "v1", plural: "secrets", namespaced: true },
  configMaps: { group: "", version: "v1", plural: "configmaps", namespaced: true },
  endpointSlices: { group: "discovery.k8s.io", version: "v1", plural: "endpointslices", namespaced: true },
  serviceExports: {
    group: "multicluster.x-k8s.io",
    version: "v1beta1",
    plural: "serviceexports",
    namespaced: true,
  },
  serviceImports: {
    group: "multicluster.x-k8s.io",
    version: "v1beta1",
    plural: "serviceimports",
    namespaced: true,
  },
  clusterProperties: {
    group: "about.k8s.io",
    version: "v1beta1",
    plural: "clusterproperties",
    namespaced: false,
  },
  clusters: { group: "meridian.dev", version: "v1alpha1", plural: "clusters", namespaced: true },
  trafficPolicies: {
    group: "meridian.dev",
    version: "v1alpha1",
    plural: "trafficpolicies",
    namespaced: true,
  },
  leases: { group: "coordination.k8s.io", version: "v1", plural: "leases", namespaced: true },
} as const satisfies Record<string, ResourceRef>;
