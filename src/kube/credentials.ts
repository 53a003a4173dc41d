/**
 * Connection details for one cluster, from a kubeconfig or the in-cluster service account, without
 * loading @kubernetes/client-node (whose import alone costs ~67 MB of memory: the controller
 * holds one of these per member). Client certificates, bearer tokens and token files are handled
 * here; exec and auth-provider plugins fall back to client-node's KubeConfig.
 */
import { readFileSync } from "node:fs";
import type https from "node:https";
import { parse } from "yaml";

/** What RestClient needs: where the server is, and how to authenticate a request. */
export interface ClusterCredentials {
  server: string;
  /**
   * Reach the server through this Unix socket (TLS still runs end to end, verified against the
   * server URL's host name): how processes inside a local member's network reach its API server.
   */
  socketPath?: string;
  applyToHTTPSOptions(opts: https.RequestOptions): Promise<void>;
}

/** The same credentials, connecting through a Unix socket. */
export function viaSocket(credentials: ClusterCredentials, socketPath: string): ClusterCredentials {
  return {
    server: credentials.server,
    socketPath,
    applyToHTTPSOptions: (o) => credentials.applyToHTTPSOptions(o),
  };
}

interface RawKubeconfig {
  "current-context"?: string;
  clusters?: { name: string; cluster: Record<string, unknown> }[];
  users?: { name: string; user: Record<string, unknown> }[];
  contexts?: { name: string; context: { cluster: string; user: string } }[];
}

const b64 = (v: unknown): Buffer | undefined =>
  typeof v === "string" ? Buffer.from(v, "base64") : undefined;
const file = (v: unknown): Buffer | undefined => (typeof v === "string" ? readFileSync(v) : undefined);

class StaticCredentials implements ClusterCredentials {
  constructor(
    readonly server: string,
    private readonly tls: { ca?: Buffer; cert?: Buffer; key?: Buffer; insecure: boolean },
    private readonly token: () => string | undefined,
  ) {}

  applyToHTTPSOptions(opts: https.RequestOptions): Promise<void> {
    if (this.tls.ca) opts.ca = this.tls.ca;
    if (this.tls.cert) opts.cert = this.tls.cert;
    if (this.tls.key) opts.key = this.tls.key;
    if (this.tls.insecure) opts.rejectUnauthorized = false;
    const token = this.token();
    if (token)
      opts.headers = { ...(opts.headers as Record<string, string>), Authorization: `Bearer ${token}` };
    return Promise.resolve();
  }
}

/** Credentials from kubeconfig text; `context` defaults to its current context. */
export async function credentialsFromKubeconfig(text: string, context?: string): Promise<ClusterCredentials> {
  const kc = parse(text) as RawKubeconfig;
  const ctxName = context ?? kc["current-context"];
  const ctx = kc.contexts?.find((c) => c.name === ctxName)?.context;
  if (!ctx) throw new Error(`the kubeconfig has no context "${ctxName ?? ""}"`);
  const cluster = kc.clusters?.find((c) => c.name === ctx.cluster)?.cluster;
  const user = kc.users?.find((u) => u.name === ctx.user)?.user ?? {};
  if (!cluster || typeof cluster["server"] !== "string")
    throw new Error(`the kubeconfig's cluster "${ctx.cluster}" has no server`);
  if (user["exec"] || user["auth-provider"]) return pluginCredentials(text, ctxName, cluster["server"]);
  return staticCredentialsOf(cluster["server"], cluster, user);
}

/** Credentials of a user with an exec or auth-provider plugin, through client-node's machinery. */
async function pluginCredentials(
  text: string,
  context: string | undefined,
  server: string,
): Promise<ClusterCredentials> {
  // Loaded only for plugins: client-node costs a small daemon ~67 MB.
  const { KubeConfig } = await import("@kubernetes/client-node");
  const full = new KubeConfig();
  full.loadFromString(text);
  if (context) full.setCurrentContext(context);
  return { server, applyToHTTPSOptions: (opts) => full.applyToHTTPSOptions(opts) };
}

/** A kubeconfig cluster and user whose certificates and token are inline or in files. */
function staticCredentialsOf(
  server: string,
  cluster: Record<string, unknown>,
  user: Record<string, unknown>,
): StaticCredentials {
  const tokenFile = user["tokenFile"];
  return new StaticCredentials(
    server,
    {
      ca: b64(cluster["certificate-authority-data"]) ?? file(cluster["certificate-authority"]),
      cert: b64(user["client-certificate-data"]) ?? file(user["client-certificate"]),
      key: b64(user["client-key-data"]) ?? file(user["client-key"]),
      insecure: cluster["insecure-skip-tls-verify"] === true,
    },
    // Token files are re-read: projected service-account tokens rotate.
    () =>
      typeof user["token"] === "string"
        ? user["token"]
        : typeof tokenFile === "string"
          ? readFileSync(tokenFile, "utf8").trim()
          : undefined,
  );
}

export async function credentialsFromFile(path: string, context?: string): Promise<ClusterCredentials> {
  return credentialsFromKubeconfig(readFileSync(path, "utf8"), context);
}

const SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";

/** The pod's own service account, as a controller running in a cluster uses it. */
export function inClusterCredentials(): ClusterCredentials {
  const host = process.env["KUBERNETES_SERVICE_HOST"];
  const port = process.env["KUBERNETES_SERVICE_PORT"] ?? "443";
  if (!host)
    throw new Error("not running in a cluster (KUBERNETES_SERVICE_HOST is not set); pass --kubeconfig");
  const server = `https://${host.includes(":") ? `[${host}]` : host}:${port}`;
  return new StaticCredentials(server, { ca: readFileSync(`${SA_DIR}/ca.crt`), insecure: false }, () =>
    readFileSync(`${SA_DIR}/token`, "utf8").trim(),
  );
}

/**
 * The member's API credentials, with errors that name the file and the context. Without a file,
 * the Pod's in-cluster service account (a Deployment in a real cluster). Loaded without
 * client-node, which would cost this small daemon ~67 MB.
 */
export async function loadCredentials(
  file: string | undefined,
  context: string | undefined,
  apiSocket: string | undefined,
): Promise<{ name: string; credentials: ClusterCredentials }> {
  let credentials: ClusterCredentials;
  if (file === undefined) {
    if (!process.env["KUBERNETES_SERVICE_HOST"]) {
      throw new Error("--kubeconfig is required outside a Kubernetes Pod (no in-cluster configuration)");
    }
    credentials = inClusterCredentials();
  } else {
    try {
      credentials = await credentialsFromFile(file, context);
    } catch (error) {
      throw new Error(`cannot use kubeconfig ${file}: ${(error as Error).message}`, { cause: error });
    }
  }
  return {
    name: context ?? "member",
    credentials: apiSocket ? viaSocket(credentials, apiSocket) : credentials,
  };
}
