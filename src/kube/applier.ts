/**
 * The shared applier: server-side apply of desired objects with one field manager, skipping any
 * object whose live copy already holds every desired field (so a restart or a resync writes
 * nothing that is already right), status through the `/status` subresource, and deletion of owned
 * objects that are no longer desired.
 */
import { createHash } from "node:crypto";
import type { KubernetesObject } from "@kubernetes/client-node";
import { ApiError, resourcePath, Resources, type ResourceRef, type RestClient } from "./rest.js";

const KINDS: Record<string, ResourceRef> = {
  "v1/Service": { group: "", version: "v1", plural: "services", namespaced: true },
  "v1/Namespace": { group: "", version: "v1", plural: "namespaces", namespaced: false },
  "v1/Secret": { group: "", version: "v1", plural: "secrets", namespaced: true },
  "v1/ServiceAccount": { group: "", version: "v1", plural: "serviceaccounts", namespaced: true },
  "v1/ConfigMap": Resources.configMaps,
  "meridian.dev/v1alpha1/TrafficPolicy": Resources.trafficPolicies,
  "discovery.k8s.io/v1/EndpointSlice": {
    group: "discovery.k8s.io",
    version: "v1",
    plural: "endpointslices",
    namespaced: true,
  },
  "multicluster.x-k8s.io/v1beta1/ServiceImport": {
    group: "multicluster.x-k8s.io",
    version: "v1beta1",
    plural: "serviceimports",
    namespaced: true,
  },
  "multicluster.x-k8s.io/v1beta1/ServiceExport": {
    group: "multicluster.x-k8s.io",
    version: "v1beta1",
    plural: "serviceexports",
    namespaced: true,
  },
  "about.k8s.io/v1beta1/ClusterProperty": {
    group: "about.k8s.io",
    version: "v1beta1",
    plural: "clusterproperties",
    namespaced: false,
  },
  "meridian.dev/v1alpha1/Cluster": {
    group: "meridian.dev",
    version: "v1alpha1",
    plural: "clusters",
    namespaced: true,
  },
  "rbac.authorization.k8s.io/v1/ClusterRole": {
    group: "rbac.authorization.k8s.io",
    version: "v1",
    plural: "clusterroles",
    namespaced: false,
  },
  "rbac.authorization.k8s.io/v1/ClusterRoleBinding": {
    group: "rbac.authorization.k8s.io",
    version: "v1",
    plural: "clusterrolebindings",
    namespaced: false,
  },
};

export function resourceFor(obj: Pick<KubernetesObject, "apiVersion" | "kind">): ResourceRef {
  const ref = KINDS[`${obj.apiVersion ?? ""}/${obj.kind ?? ""}`];
  if (!ref) throw new Error(`the applier does not know ${obj.apiVersion ?? "?"}/${obj.kind ?? "?"}`);
  return ref;
}

/**
 * True when every field of `desired` is present with an equal value in `live` (extra fields in
 * `live`, such as defaults and metadata the server adds, do not matter). Arrays must match exactly.
 */
export function containsAll(live: unknown, desired: unknown): boolean {
  if (desired === undefined) return true;
  if (desired === null || typeof desired !== "object") return live === desired;
  if (Array.isArray(desired)) {
    if (!Array.isArray(live) || live.length !== desired.length) return false;
    return desired.every((d, i) => containsAll(live[i], d));
  }
  if (live === null || typeof live !== "object" || Array.isArray(live)) return false;
  const l = live as Record<string, unknown>;
  return Object.entries(desired as Record<string, unknown>).every(([k, v]) => containsAll(l[k], v));
}

/** Annotation holding a hash of what Meridian last applied: equal hash, nothing to write. */
export const ANNOTATION_APPLIED_HASH = "meridian.dev/applied-hash";

/**
 * The object as the API server will store it: JSON, with timestamps at the server's one-second
 * precision (otherwise every comparison with a live object would differ in the milliseconds).
 */
export function toWire<T>(obj: T): T {
  return JSON.parse(
    JSON.stringify(obj, function (this: Record<string, unknown>, key: string, value: unknown) {
      const raw = this[key];
      return raw instanceof Date ? raw.toISOString().replace(/\.\d{3}Z$/, "Z") : value;
    }),
  ) as T;
}

function withoutStatus(obj: KubernetesObject & { status?: unknown }): KubernetesObject {
  const { status: _status, ...rest } = obj;
  return rest;
}

export function appliedHash(obj: KubernetesObject): string {
  return createHash("sha256").update(JSON.stringify(obj)).digest("base64url").slice(0, 22);
}

function statusPatch(header: KubernetesObject, status: unknown): KubernetesObject {
  return {
    apiVersion: header.apiVersion,
    kind: header.kind,
    metadata: { name: header.metadata?.name, namespace: header.metadata?.namespace },
    status,
  } as KubernetesObject;
}

export interface ApplyResult {
  applied: boolean;
  object: KubernetesObject;
}

export class Applier {
  constructor(
    private readonly rest: RestClient,
    readonly fieldManager: string,
  ) {}

  private async patch(obj: KubernetesObject, subresource?: string): Promise<KubernetesObject> {
    const ref = resourceFor(obj);
    return this.rest.request<KubernetesObject>(
      "PATCH",
      resourcePath(ref, obj.metadata?.namespace, obj.metadata?.name, subresource),
      {
        query: { fieldManager: this.fieldManager, force: true },
        body: JSON.stringify(obj),
        contentType: "application/apply-patch+yaml",
      },
    );
  }

  /**
   * Applies `desired` (its `status`, if any, separately through `/status`) unless `live` already
   * holds it: the spec is compared by the hash Meridian stamped on its last apply, so removed
   * fields are noticed too; the status by content. Returns whether anything was written.
   */
  async apply(
    desired: KubernetesObject & { status?: unknown },
    live?: KubernetesObject & { status?: unknown },
  ): Promise<ApplyResult> {
    const wire = toWire(desired);
    const spec = withoutStatus(wire);
    const hash = appliedHash(spec);
    let object = live;
    let applied = false;
    if (live?.metadata?.annotations?.[ANNOTATION_APPLIED_HASH] !== hash) {
      spec.metadata = {
        ...spec.metadata,
        annotations: { ...spec.metadata?.annotations, [ANNOTATION_APPLIED_HASH]: hash },
      };
      object = await this.patch(spec);
      applied = true;
    }
    if (wire.status !== undefined && !containsAll(object?.status, wire.status)) {
      object = await this.patch(statusPatch(wire, wire.status), "status");
      applied = true;
    }
    return { applied, object: object! };
  }

  /** Writes only the status of an object that someone else owns (e.g. a user's ServiceExport). */
  async applyStatus(header: KubernetesObject, status: unknown, liveStatus?: unknown): Promise<boolean> {
    const wire = toWire(status);
    if (containsAll(liveStatus, wire)) return false;
    await this.patch(statusPatch(header, wire), "status");
    return true;
  }

  /** Deletes an object; a missing one is not an error. */
  async delete(obj: KubernetesObject): Promise<boolean> {
    const ref = resourceFor(obj);
    try {
      await this.rest.request("DELETE", resourcePath(ref, obj.metadata?.namespace, obj.metadata?.name), {
        query: { propagationPolicy: "Background" },
      });
      return true;
    } catch (err) {
      if (err instanceof ApiError && err.code === 404) return false;
      throw err;
    }
  }
}
