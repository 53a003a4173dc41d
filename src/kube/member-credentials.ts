/**
 * A member's API credentials as the hub stores them: a kubeconfig in a Secret named by the
 * member's `Cluster`. The controller and the dashboard both reach members this way, so a dashboard
 * running in the hub needs nothing but the hub.
 */
import type { V1Secret } from "@kubernetes/client-node";
import type { Cluster } from "../api/meridian.js";
import { credentialsFromKubeconfig, type ClusterCredentials } from "./credentials.js";
import { ApiError, Resources, resourcePath, type RestClient } from "./rest.js";

/** Why a member's credentials cannot be used; `reason` is a condition reason. */
export class CredentialsError extends Error {
  constructor(
    readonly reason: "SecretNotFound" | "InvalidCredentials",
    message: string,
  ) {
    super(message);
    this.name = "CredentialsError";
  }
}

export function errorText(err: unknown): string {
  if (err instanceof AggregateError) return err.errors.map(errorText).join("; ");
  return err instanceof Error ? err.message : String(err);
}

/** The credentials, and the Secret's resourceVersion to notice rotation. */
export async function readMemberCredentials(
  hub: RestClient,
  namespace: string,
  cluster: Cluster,
): Promise<{ credentials: ClusterCredentials; version: string }> {
  const secretName = cluster.spec.credentials.secretName;
  const key = cluster.spec.credentials.key ?? "kubeconfig";
  let secret: V1Secret;
  try {
    secret = await hub.request<V1Secret>("GET", resourcePath(Resources.secrets, namespace, secretName));
  } catch (err) {
    if (err instanceof ApiError && err.code === 404) {
      throw new CredentialsError("SecretNotFound", `Secret ${namespace}/${secretName} does not exist`);
    }
    throw err;
  }
  const data = secret.data?.[key];
  if (!data)
    throw new CredentialsError("InvalidCredentials", `Secret ${namespace}/${secretName} has no key "${key}"`);
  try {
    const credentials = await credentialsFromKubeconfig(Buffer.from(data, "base64").toString("utf8"));
    return { credentials, version: secret.metadata?.resourceVersion ?? "" };
  } catch (err) {
    throw new CredentialsError(
      "InvalidCredentials",
      `Secret ${namespace}/${secretName} key "${key}" is not a usable kubeconfig: ${errorText(err)}`,
    );
  }
}
