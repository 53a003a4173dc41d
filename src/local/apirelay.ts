/**
 * In-member access to a member's API server in the local clusterset.
 *
 * The API servers listen on 127.0.0.1 in the host's network namespace, which processes inside a
 * member's node namespace cannot reach, and the host namespace may get no address of ours. A Unix
 * socket bound to a path is reachable from every network namespace (it lives in the filesystem), so
 * one host-side relay process (`api-relay`) listens on a socket per member and connects each to
 * that member's API server:
 *
 *   member node namespace                     host namespace
 *   DNS / gateway ── TLS over ──▶ DIR/run/<cluster>-apiserver.sock ── relay ──▶ 127.0.0.1:<port>
 *
 * Bytes are relayed untouched, so TLS is end to end, checked against `localhost` (a name the API
 * server's certificate carries). `DIR/clusters/<cluster>/kubeconfig` holds the credentials; the
 * process passes the socket separately (`meridian dns --api-socket`), since a kubeconfig cannot
 * name one.
 */
import { existsSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { renderKubeconfig } from "../kube/kubeconfig.js";
import { writeSecretFile } from "../pki/openssl.js";
import { meridianCommand, startComponentProcess } from "./components.js";
import type { ComponentContext } from "./components.js";
import { pkiFor } from "./controlplane.js";
import type { ClusterRecord, StatePaths } from "./state.js";

/** Longest path a Unix socket address can hold on Linux (sun_path is 108 bytes with its NUL). */
const MAX_SOCKET_PATH = 107;
// Generous: on a loaded 2-core machine a cold `meridian` start (tsx, no fresh dist/) takes seconds.
const SOCKET_WAIT_MS = 60_000;

export interface MemberApiAccess {
  /** The relay's Unix socket for this member. */
  readonly socket: string;
  /** Kubeconfig (admin credentials) to use through `socket`. */
  readonly kubeconfig: string;
  /** `https://localhost:<port>`: the name the API server's certificate carries. */
  readonly server: string;
}

export function apiSocketPath(paths: StatePaths, cluster: string): string {
  return path.join(paths.dir, "run", `${cluster}-apiserver.sock`);
}

export function memberKubeconfigPath(paths: StatePaths, cluster: string): string {
  return path.join(paths.clusterDir(cluster), "kubeconfig");
}

/** The relay process of a clusterset: one for every member, so that `up` starts one process. */
export const API_RELAY_PROCESS = "api-relay";

const relayStarts = new WeakMap<ComponentContext, Promise<void>>();

/**
 * Starts (or keeps) the clusterset's API relay: one host-side process that listens on a Unix
 * socket per member (`DIR/run/<cluster>-apiserver.sock`) and connects it to that member's API
 * server on the host's loopback. Path-based Unix sockets cross network namespaces, so processes
 * in a member's network reach their API server through it, with TLS end to end.
 */
export function ensureApiRelay(ctx: ComponentContext): Promise<void> {
  let started = relayStarts.get(ctx);
  if (!started) {
    started = (async () => {
      const members = ctx.record.clusters.filter((c) => c.network);
      const args: string[] = ["api-relay"];
      for (const c of members) {
        const socket = apiSocketPath(ctx.paths, c.name);
        if (Buffer.byteLength(socket) > MAX_SOCKET_PATH) {
          throw new Error(
            `the API relay socket path ${socket} is longer than ${MAX_SOCKET_PATH} bytes; use a shorter --state-dir`,
          );
        }
        mkdirSync(path.dirname(socket), { recursive: true });
        args.push("--from", `unix:${socket}`, "--to", `tcp:127.0.0.1:${c.apiserverPort}`);
      }
      startComponentProcess(ctx, { name: API_RELAY_PROCESS, argv: meridianCommand(...args) });
      await Promise.all(
        members.map((c) =>
          waitForSocket(
            apiSocketPath(ctx.paths, c.name),
            `the API relay (${ctx.paths.logFile(API_RELAY_PROCESS)})`,
          ),
        ),
      );
    })();
    relayStarts.set(ctx, started);
  }
  return started;
}

/**
 * API access for processes inside a member's network: a kubeconfig (server `https://localhost`,
 * which the API server's certificate names) to use with the member's relay socket (pass both;
 * see `viaSocket`). Idempotent; safe to call from several components.
 */
export async function ensureMemberApiAccess(
  ctx: ComponentContext,
  cluster: ClusterRecord,
): Promise<MemberApiAccess> {
  if (!cluster.network) throw new Error(`${cluster.name} is not a member: it has no network of its own`);
  await ensureApiRelay(ctx);
  const server = `https://localhost:${cluster.apiserverPort}`;
  const kubeconfig = memberKubeconfigPath(ctx.paths, cluster.name);
  const pki = pkiFor(ctx.paths, cluster.name);
  writeSecretFile(
    kubeconfig,
    renderKubeconfig([
      {
        name: cluster.name,
        server,
        caData: readFileSync(pki.caFile),
        clientCertData: readFileSync(pki.adminCertFile),
        clientKeyData: readFileSync(pki.adminKeyFile),
      },
    ]),
  );
  return { kubeconfig, server, socket: apiSocketPath(ctx.paths, cluster.name) };
}

async function waitForSocket(socketPath: string, what: string): Promise<void> {
  const deadline = Date.now() + SOCKET_WAIT_MS;
  while (Date.now() < deadline) {
    if (await accepts({ path: socketPath })) return;
    await sleep(50);
  }
  throw new Error(`${what} did not start listening on ${socketPath} within ${SOCKET_WAIT_MS / 1000}s`);
}

function accepts(target: net.NetConnectOpts): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(target);
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

/** One end of a relay: `unix:/path` or `tcp:host:port`. */
export type RelayEndpoint =
  | { readonly kind: "unix"; readonly path: string }
  | { readonly kind: "tcp"; readonly host: string; readonly port: number };

/** Parses `unix:/path` or `tcp:HOST:PORT`; `flag` names the option in errors. */
export function parseRelayEndpoint(flag: string, value: string): RelayEndpoint {
  if (value.startsWith("unix:") && value.length > "unix:".length) {
    return { kind: "unix", path: value.slice("unix:".length) };
  }
  const tcp = /^tcp:(.+):(\d+)$/.exec(value);
  const port = Number(tcp?.[2]);
  if (tcp && Number.isInteger(port) && port > 0 && port < 65536) {
    return { kind: "tcp", host: tcp[1]!.replace(/^\[(.*)\]$/, "$1"), port };
  }
  throw new Error(`${flag} must be unix:/PATH or tcp:HOST:PORT, got "${value}"`);
}

function describeEndpoint(endpoint: RelayEndpoint): string {
  return endpoint.kind === "unix" ? `unix:${endpoint.path}` : `tcp:${endpoint.host}:${endpoint.port}`;
}

/**
 * Accepts connections on `from` and pipes each to a new connection to `to`, both ways, closing
 * either side when the other ends. Resolves with the listening server.
 */
export async function startRelay(
  from: RelayEndpoint,
  to: RelayEndpoint,
  log: (line: string) => void = () => {},
): Promise<net.Server> {
  const server = net.createServer((client) => {
    const upstream =
      to.kind === "unix" ? net.connect({ path: to.path }) : net.connect({ host: to.host, port: to.port });
    client.pipe(upstream);
    upstream.pipe(client);
    const end = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.once("error", end).once("close", end);
    upstream
      .once("error", (error) => {
        log(`relay to ${describeEndpoint(to)} failed: ${error.message}`);
        end();
      })
      .once("close", end);
  });
  if (from.kind === "unix" && existsSync(from.path)) {
    // A socket file left by a relay that died; the pid file guard means no live relay owns it.
    rmSync(from.path, { force: true });
  }
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    const onListening = (): void => {
      server.off("error", reject);
      resolve();
    };
    if (from.kind === "unix") server.listen(from.path, onListening);
    else server.listen(from.port, from.host, onListening);
  });
  server.on("error", (error) => log(`relay listener error: ${error.message}`));
  log(`relaying ${describeEndpoint(from)} -> ${describeEndpoint(to)}`);
  return server;
}
