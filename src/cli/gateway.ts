/**
 * `meridian gateway ...`: run the east-west gateway as a process, and the small PKI steps around
 * it (create the clusterset root, make a key + CSR where the key will be used, sign a CSR).
 */
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import type { Logger } from "pino";
import type { Command } from "commander";
import { Option } from "commander";
import { DEFAULT_MULTIPLEX_CONNECTIONS } from "../gateway/mux.js";
import { Gateway, type GatewayOptions } from "../gateway/gateway.js";
import type { IdentitySource } from "../gateway/identity.js";
import { FileIdentity, RenewingIdentity, splitPems } from "../gateway/identity.js";
import { KubernetesRoutingSource } from "../gateway/kube-routes.js";
import { gatewayStatusPublisher } from "../gateway/kube-status.js";
import { PodNamespaceSource } from "../gateway/source-namespaces.js";
import { JsonFileRoutingSource, type RoutingSource } from "../gateway/routes.js";
import { loadCredentials } from "../kube/credentials.js";
import { RestClient } from "../kube/rest.js";
import type { TrustBundle } from "../gateway/trust.js";
import {
  createGatewayKeyRequest,
  createTrustRoot,
  LocalSigner,
  signGatewayRequest,
} from "../gateway/trust.js";
import { createLogger } from "../observability/logger.js";
import { registryTotals, statsPublisher } from "../observability/stats-report.js";
import { MEMBER_NAMESPACE } from "../api/meridian.js";
import { parseHostPort, startMetricsServer } from "../observability/metrics-server.js";

export interface RunOptions {
  clusterId: string;
  clusterset: string;
  listenPeer: string;
  listenLocal: string;
  routes?: string;
  routesFromCluster?: boolean;
  kubeconfig?: string;
  context?: string;
  apiSocket?: string;
  serveClusterSetIps?: boolean;
  /** commander's negation of --no-source-namespaces */
  sourceNamespaces: boolean;
  accessDefault: string;
  readyFile?: string;
  cert?: string;
  key?: string;
  ca?: string;
  revoked?: string;
  trustDir?: string;
  certLifetime: string;
  region?: string;
  zone?: string;
  metrics?: string;
  maxConnections?: string;
  idleTimeout: string;
  udpFlowTimeout: string;
  drainTimeout: string;
  probeInterval: string;
  /** Multiplexed connections per peer gateway; 0: a connection per concurrent stream. */
  multiplex: string;
}

const seconds = (v: string, flag: string): number => {
  const n = Number(v);
  if (!(n > 0)) throw new Error(`${flag} must be a positive number of seconds, got "${v}"`);
  return n * 1000;
};

const wholeNumber = (v: string, flag: string): number => {
  const n = Number(v);
  if (v.trim() === "" || !Number.isInteger(n) || n < 0)
    throw new Error(`${flag} must be a whole number (0 or more), got "${v}"`);
  return n;
};

const positiveInteger = (v: string, flag: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${flag} must be a whole number above 0, got "${v}"`);
  return n;
};

function writeSecret(file: string, content: string): void {
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  writeFileSync(file, content, { mode: 0o600 });
}

function identityFrom(o: RunOptions, onError: (err: unknown) => void): IdentitySource {
  if (o.cert || o.key || o.ca) {
    if (!o.cert || !o.key || !o.ca) throw new Error("--cert, --key and --ca go together");
    return new FileIdentity({
      clusterset: o.clusterset,
      clusterId: o.clusterId,
      certFile: o.cert,
      keyFile: o.key,
      caFile: o.ca,
      ...(o.revoked ? { revokedFile: o.revoked } : {}),
      onError,
    });
  }
  if (!o.trustDir)
    throw new Error("give --cert/--key/--ca, or --trust-dir holding the clusterset root (ca.crt, ca.key)");
  const caFile = path.join(o.trustDir, "ca.crt");
  const caKeyFile = path.join(o.trustDir, "ca.key");
  if (!existsSync(caFile) || !existsSync(caKeyFile))
    throw new Error(
      `${o.trustDir} has no ca.crt/ca.key; create it with: meridian gateway init-trust --dir ${o.trustDir} --clusterset ${o.clusterset}`,
    );
  const root = { certPem: readFileSync(caFile, "utf8"), privateKeyPem: readFileSync(caKeyFile, "utf8") };
  const revoked = o.revoked
    ? (JSON.parse(readFileSync(o.revoked, "utf8")) as { serials?: string[]; clusters?: string[] })
    : {};
  const bundle: TrustBundle = {
    clusterset: o.clusterset,
    caPems: splitPems(root.certPem),
    revokedSerials: revoked.serials ?? [],
    revokedClusters: revoked.clusters ?? [],
  };
  return new RenewingIdentity({
    clusterset: o.clusterset,
    clusterId: o.clusterId,
    // The signer runs in this process only in local mode, where the root is on this machine; the
    // gateway's own key is still generated here and only its CSR goes to the signer.
    signer: new LocalSigner(root, o.clusterset, seconds(o.certLifetime, "--cert-lifetime") / 1000),
    bundle,
    onError,
  });
}

async function memberRestClient(o: RunOptions): Promise<RestClient> {
  const { credentials } = await loadCredentials(o.kubeconfig, o.context, o.apiSocket);
  return new RestClient(o.clusterId, credentials, { maxSockets: 8 });
}

function routingSource(o: RunOptions, log: Logger, member: RestClient | undefined): RoutingSource {
  if ((o.routes === undefined) === !o.routesFromCluster)
    throw new Error("give exactly one of --routes <file> and --routes-from-cluster");
  if (o.accessDefault !== "allow" && o.accessDefault !== "deny")
    throw new Error(`--access-default must be "allow" or "deny", got "${o.accessDefault}"`);
  if (o.routes !== undefined) {
    return new JsonFileRoutingSource(o.routes, 2000, (err) =>
      log.error({ err: err.message }, "routes file rejected; keeping the last good table"),
    );
  }
  if (!member) throw new Error("--routes-from-cluster needs the member's API server");
  return new KubernetesRoutingSource(member, {
    clusterId: o.clusterId,
    listenOn: o.serveClusterSetIps ? "cluster-set-ip" : "gateway-port",
    accessDefault: o.accessDefault,
    onError: (message) => log.error({ err: message }, "peer list rejected; keeping the last good one"),
    onProblem: (message) => log.warn({ problem: message }, "routing narrowed"),
  });
}

/**
 * Local mode: the gateway answers on each import's ClusterSetIP itself, standing in for
 * kube-proxy, so the address must be one of this network namespace's own.
 */
async function addLocalAddress(host: string): Promise<void> {
  const prefix = host.includes(":") ? 128 : 32;
  await promisify(execFile)("ip", ["addr", "replace", `${host}/${prefix}`, "dev", "lo"]);
}

/** The gateway's settings that come straight from its flags; throws naming a bad flag. */
export function gatewaySettings(
  o: RunOptions,
): Pick<
  GatewayOptions,
  "clusterId" | "locality" | "localListenHost" | "prepareListenHost" | "limits" | "probe" | "pool"
> {
  return {
    clusterId: o.clusterId,
    locality: { ...(o.region ? { region: o.region } : {}), ...(o.zone ? { zone: o.zone } : {}) },
    localListenHost: o.listenLocal,
    ...(o.serveClusterSetIps ? { prepareListenHost: addLocalAddress } : {}),
    limits: {
      ...(o.maxConnections !== undefined
        ? { maxConnections: positiveInteger(o.maxConnections, "--max-connections") }
        : {}),
      idleTimeoutMs: seconds(o.idleTimeout, "--idle-timeout"),
      udpFlowIdleMs: seconds(o.udpFlowTimeout, "--udp-flow-timeout"),
    },
    probe: { intervalMs: seconds(o.probeInterval, "--probe-interval") },
    pool: { multiplex: wholeNumber(o.multiplex, "--multiplex") },
  };
}

async function run(o: RunOptions): Promise<void> {
  const log = createLogger("gateway");
  const onError = (err: unknown): void => log.error({ err }, "credentials");
  const peer = parseHostPort(o.listenPeer, "--listen-peer");
  // One client to the member, for the routing source and the status report alike.
  const member = o.routesFromCluster ? await memberRestClient(o) : undefined;
  const routes = routingSource(o, log, member);
  await routes.start();
  // Clients' namespaces by pod address, for exporters' namespace-scoped allow lists.
  const sourceNamespaces = member && o.sourceNamespaces ? new PodNamespaceSource(member) : undefined;
  await sourceNamespaces?.start();
  const gateway = new Gateway({
    ...gatewaySettings(o),
    identity: identityFrom(o, onError),
    routes,
    peerListen: peer,
    ...(sourceNamespaces ? { sourceNamespaces } : {}),
    logger: log,
  });
  await gateway.start();
  const metricsAt = o.metrics ? parseHostPort(o.metrics, "--metrics") : undefined;
  const metrics = metricsAt
    ? await startMetricsServer(gateway.metrics.registry, metricsAt.host, metricsAt.port)
    : undefined;
  // One line on stdout with what was bound, for scripts and tests that start us with port 0.
  process.stdout.write(
    `${JSON.stringify({ ready: true, peerPort: gateway.peerPort, metricsPort: metrics?.port, listen: Object.fromEntries(gateway.listenPorts()) })}\n`,
  );
  // A gateway fed by its member reports its routing back there (for `meridian status`).
  const publisher = member
    ? gatewayStatusPublisher(member, o.clusterId, gateway, (err) =>
        log.warn({ err }, "could not publish the gateway status"),
      )
    : undefined;
  publisher?.start();
  // Traffic totals for the dashboard, which reads members through their API servers only.
  const stats = member
    ? statsPublisher(
        member,
        MEMBER_NAMESPACE,
        "gateway",
        async () => ({
          counters: await registryTotals(gateway.metrics.registry, [
            { metric: "meridian_gateway_connections_total", short: "connections" },
            { metric: "meridian_gateway_connections_active", short: "active" },
            { metric: "meridian_gateway_bytes_total", short: "bytes" },
            { metric: "meridian_gateway_refusals_total", short: "refusals", by: "reason" },
          ]),
        }),
        (err) => log.warn({ err }, "could not publish the gateway's traffic totals"),
      )
    : undefined;
  stats?.start();
  if (o.readyFile) writeFileSync(o.readyFile, `${process.pid}\n`);
  let stopping = false;
  const shutdown = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, "draining");
    void gateway.stop(seconds(o.drainTimeout, "--drain-timeout")).then(async () => {
      routes.stop();
      sourceNamespaces?.stop();
      publisher?.stop();
      stats?.stop();
      await metrics?.close();
      if (o.readyFile) rmSync(o.readyFile, { force: true });
      process.exit(0);
    });
  };
  process.once("SIGTERM", () => shutdown("SIGTERM"));
  process.once("SIGINT", () => shutdown("SIGINT"));
  process.on("SIGUSR2", () => process.stderr.write(`${JSON.stringify(gateway.routing(), null, 2)}\n`));
}

/** Registers `meridian gateway run|init-trust|request|sign`. */
export function registerGatewayCommands(program: Command): void {
  const gateway = program
    .command("gateway")
    .description("the east-west gateway: cross-cluster traffic over mutual TLS");

  gateway
    .command("run")
    .description("run a gateway for one cluster (SIGTERM drains: stops accepting, lets connections finish)")
    .requiredOption("--cluster-id <id>", "this cluster's id (named in its certificate)")
    .requiredOption("--clusterset <name>", "the clusterset's name (trust domain), e.g. clusterset.local")
    .requiredOption("--listen-peer <host:port>", "mTLS listener for peer gateways")
    .option("--listen-local <host>", "address of the per-service local listeners", "0.0.0.0")
    .option("--routes <file>", "routing table (JSON, reloaded on change; see docs/gateway.md)")
    .option(
      "--routes-from-cluster",
      "build the routing table from this member's API server (ServiceImports, EndpointSlices, ServiceExports, TrafficPolicies, the peers ConfigMap)",
    )
    .option(
      "--kubeconfig <file>",
      "with --routes-from-cluster: the member's kubeconfig (default: in-cluster)",
    )
    .option("--context <name>", "kubeconfig context")
    .option("--api-socket <path>", "reach the API server through this Unix socket (local clusterset)")
    .option(
      "--serve-cluster-set-ips",
      "answer on each import's ClusterSetIP (added to lo): the local clusterset's kube-proxy stand-in",
    )
    .option(
      "--no-source-namespaces",
      "with --routes-from-cluster: do not watch pods to tell peers which namespace a client is in (exporters' cluster/namespace allow entries then refuse)",
    )
    .option("--access-default <allow|deny>", "exports without an allow list: who may consume them", "allow")
    .option("--ready-file <path>", "create this file once serving")
    .option("--cert <file>", "certificate (PEM), reloaded when it changes")
    .option("--key <file>", "private key (PEM)")
    .option("--ca <file>", "clusterset root(s) (PEM bundle)")
    .option("--revoked <file>", 'revocations, JSON {"serials": [...], "clusters": [...]}')
    .option(
      "--trust-dir <dir>",
      "local mode: ca.crt + ca.key; the gateway makes its key and has its CSR signed",
    )
    .option("--cert-lifetime <seconds>", "with --trust-dir: certificate lifetime (renewed at 2/3)", "86400")
    .option("--region <region>", "this cluster's region (locality)")
    .option("--zone <zone>", "this cluster's zone (locality)")
    .option("--metrics <host:port>", "serve /metrics, /healthz, /readyz")
    .option(
      "--max-connections <n>",
      "proxied connections at once, per direction (default: 20000, or fewer if the open-file limit leaves room for fewer)",
    )
    .option("--idle-timeout <seconds>", "close connections idle this long", "3600")
    .option(
      "--udp-flow-timeout <seconds>",
      "end a UDP flow (one client address to one imported port) after this long without a datagram either way",
      "30",
    )
    .option("--drain-timeout <seconds>", "on SIGTERM, wait this long for connections to finish", "25")
    .option("--probe-interval <seconds>", "active probe period for peer gateways (jittered ±20%)", "1")
    .addOption(
      new Option(
        "--multiplex <connections>",
        "carry streams to each peer gateway as channels over this many mTLS connections (ALPN meridian-mux/1; peers that do not offer it get a connection per stream); 0: a connection per stream",
      )
        .default(String(DEFAULT_MULTIPLEX_CONNECTIONS))
        .env("MERIDIAN_GATEWAY_MULTIPLEX"),
    )
    .action(run);

  gateway
    .command("init-trust")
    .description("create a clusterset root CA (ca.crt, ca.key) in a directory, unless one exists")
    .requiredOption("--dir <dir>", "where to write it")
    .requiredOption("--clusterset <name>", "the clusterset's name")
    .option("--days <n>", "validity", "3650")
    .action((o: { dir: string; clusterset: string; days: string }) => {
      const certFile = path.join(o.dir, "ca.crt");
      if (existsSync(certFile)) {
        process.stdout.write(`${certFile} exists; keeping it\n`);
        return;
      }
      const root = createTrustRoot(o.clusterset, Number(o.days));
      writeSecret(path.join(o.dir, "ca.key"), root.privateKeyPem);
      writeFileSync(certFile, root.certPem);
      process.stdout.write(`wrote ${certFile} and ca.key\n`);
    });

  gateway
    .command("request")
    .description("make a private key and a CSR here (the key never leaves this machine)")
    .requiredOption("--cluster-id <id>", "cluster id")
    .requiredOption("--clusterset <name>", "the clusterset's name")
    .requiredOption("--out <dir>", "writes tls.key and tls.csr")
    .action((o: { clusterId: string; clusterset: string; out: string }) => {
      const req = createGatewayKeyRequest(o.clusterset, o.clusterId);
      writeSecret(path.join(o.out, "tls.key"), req.privateKeyPem);
      writeFileSync(path.join(o.out, "tls.csr"), req.csrPem);
      process.stdout.write(`wrote ${path.join(o.out, "tls.key")} and tls.csr\n`);
    });

  gateway
    .command("sign")
    .description("sign a gateway CSR with the clusterset root; prints the certificate")
    .requiredOption("--trust-dir <dir>", "holds ca.crt and ca.key")
    .requiredOption("--csr <file>", "the CSR")
    .requiredOption("--cluster-id <id>", "the cluster the requester is (names in the CSR must match)")
    .requiredOption("--clusterset <name>", "the clusterset's name")
    .option("--lifetime <seconds>", "certificate lifetime", "86400")
    .action(
      (o: { trustDir: string; csr: string; clusterId: string; clusterset: string; lifetime: string }) => {
        const root = {
          certPem: readFileSync(path.join(o.trustDir, "ca.crt"), "utf8"),
          privateKeyPem: readFileSync(path.join(o.trustDir, "ca.key"), "utf8"),
        };
        process.stdout.write(
          signGatewayRequest(root, readFileSync(o.csr, "utf8"), {
            clusterset: o.clusterset,
            clusterId: o.clusterId,
            lifetimeSeconds: Number(o.lifetime),
          }),
        );
      },
    );
}
