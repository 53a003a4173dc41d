/** Building kubeconfig files: one context per cluster, named after the cluster, data embedded. */
import { stringify } from "yaml";

export interface KubeconfigEntry {
  /** Used as the cluster, user and context name. */
  name: string;
  server: string;
  caData: Buffer | string;
  /** Client certificate auth, or a bearer token. */
  clientCertData?: Buffer | string;
  clientKeyData?: Buffer | string;
  token?: string;
}

const b64 = (data: Buffer | string): string => Buffer.from(data).toString("base64");

export function renderKubeconfig(entries: KubeconfigEntry[], currentContext?: string): string {
  return stringify({
    apiVersion: "v1",
    kind: "Config",
    preferences: {},
    "current-context": currentContext ?? entries[0]?.name ?? "",
    clusters: entries.map((e) => ({
      name: e.name,
      cluster: { server: e.server, "certificate-authority-data": b64(e.caData) },
    })),
    // User names are unique per cluster: client-node caches credentials by user name.
    users: entries.map((e) => ({
      name: `${e.name}-user`,
      user: e.token
        ? { token: e.token }
        : {
            "client-certificate-data": b64(e.clientCertData ?? ""),
            "client-key-data": b64(e.clientKeyData ?? ""),
          },
    })),
    contexts: entries.map((e) => ({ name: e.name, context: { cluster: e.name, user: `${e.name}-user` } })),
  });
}
