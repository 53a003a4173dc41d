/**
 * One client per cluster. Each gets its own KubeConfig instance, built once and never mutated:
 * client-node caches credentials per instance and captures the server URL at client creation, so
 * sharing or switching contexts would mix one cluster's server with another's user.
 */
import {
  ApiException,
  CoreV1Api,
  CustomObjectsApi,
  DiscoveryV1Api,
  KubeConfig,
  KubernetesObjectApi,
  PatchStrategy,
  setHeaderOptions,
  type KubernetesObject,
} from "@kubernetes/client-node";

export const DEFAULT_FIELD_MANAGER = "meridian";

/** Call options that send a patch as a JSON merge patch (generated clients default to JSON patch). */
export const MERGE_PATCH = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);

export class ClusterClient {
  readonly core: CoreV1Api;
  readonly discovery: DiscoveryV1Api;
  readonly custom: CustomObjectsApi;
  readonly objects: KubernetesObjectApi;

  constructor(
    readonly name: string,
    readonly kubeConfig: KubeConfig,
  ) {
    this.core = kubeConfig.makeApiClient(CoreV1Api);
    this.discovery = kubeConfig.makeApiClient(DiscoveryV1Api);
    this.custom = kubeConfig.makeApiClient(CustomObjectsApi);
    this.objects = KubernetesObjectApi.makeApiClient(kubeConfig);
  }

  /** A client for `context` of a kubeconfig file; the cluster is named after the context. */
  static fromFile(file: string, context: string): ClusterClient {
    const kc = new KubeConfig();
    kc.loadFromFile(file);
    if (!kc.getContextObject(context)) {
      const known = kc.getContexts().map((c) => c.name);
      throw new Error(`kubeconfig ${file} has no context "${context}" (it has: ${known.join(", ")})`);
    }
    kc.setCurrentContext(context);
    return new ClusterClient(context, kc);
  }

  get server(): string {
    return this.kubeConfig.getCurrentCluster()?.server ?? "";
  }

  /** Server-side apply of a whole object, owned by `fieldManager`. */
  async apply<T extends KubernetesObject>(
    obj: T,
    fieldManager = DEFAULT_FIELD_MANAGER,
    dryRun = false,
  ): Promise<T> {
    return this.objects.patch(
      obj,
      undefined,
      dryRun ? "All" : undefined,
      fieldManager,
      true,
      PatchStrategy.ServerSideApply,
    );
  }

  /** Reads an object, or undefined when it does not exist. */
  async read<T extends KubernetesObject>(header: {
    apiVersion: string;
    kind: string;
    metadata: { name: string; namespace?: string };
  }): Promise<T | undefined> {
    try {
      return await this.objects.read<T>(header);
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  /** Deletes an object; true when it existed. */
  async deleteIfExists(obj: KubernetesObject): Promise<boolean> {
    try {
      await this.objects.delete(obj, undefined, undefined, undefined, undefined, "Background");
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
  }
}

export function statusCode(err: unknown): number | undefined {
  if (err instanceof ApiException) return err.code;
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "number" ? code : undefined;
}

export function isNotFound(err: unknown): boolean {
  return statusCode(err) === 404;
}

export function isConflict(err: unknown): boolean {
  return statusCode(err) === 409;
}

/** The API server's message for a failed call, without the response headers client-node appends. */
export function apiErrorMessage(err: unknown): string {
  if (err instanceof ApiException) {
    const body = err.body as unknown;
    if (typeof body === "string") {
      try {
        const parsed = JSON.parse(body) as { message?: string };
        if (parsed.message) return `${parsed.message} (HTTP ${err.code})`;
      } catch {
        // not JSON
      }
      return `${body.slice(0, 500)} (HTTP ${err.code})`;
    }
    return `HTTP ${err.code}`;
  }
  return err instanceof Error ? err.message : String(err);
}
