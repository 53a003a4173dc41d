/**
 * The controller's view of one member cluster: caches of what it holds (through reflectors),
 * indexed by multi-cluster service key, and its health (API reachable, credentials accepted).
 */
import type { KubernetesObject, V1EndpointSlice, V1Namespace, V1Service } from "@kubernetes/client-node";
import { LABEL_SERVICE_NAME, type ServiceExport, type ServiceImport } from "../api/mcs.js";
import { Reflector, type ReflectorEvent } from "../kube/reflector.js";
import { ApiError, Resources, type RestClient } from "../kube/rest.js";
import {
  LABEL_KUBERNETES_SERVICE_NAME,
  LABEL_MANAGED_BY,
  LABEL_MERIDIAN_SERVICE_NAME,
  serviceKey,
} from "./names.js";

export type MemberHealth =
  | { state: "starting" }
  | { state: "ready" }
  | { state: "unreachable"; since: number; error: string }
  | { state: "unauthorized"; error: string };

export interface MemberOptions {
  clusterId: string;
  rest: RestClient;
  controllerName: string;
  /** A key whose state in this member changed. */
  onKey: (key: string, trigger: "export" | "endpoints" | "owned") => void;
  /** A namespace appeared or went away: every key in it may change. */
  onNamespace: (namespace: string) => void;
  onHealthChange: (member: Member) => void;
  onWatchRestart?: (resource: string) => void;
  unreachableAfterMs: number;
  probeIntervalMs?: number;
}

/** Objects Meridian owns in this member for one key. */
export interface OwnedObjects {
  serviceImport?: ServiceImport;
  derivedService?: V1Service;
  endpointSlices: Map<string, V1EndpointSlice>;
}

const addTo = <T>(index: Map<string, Map<string, T>>, key: string, name: string, obj: T): void => {
  let m = index.get(key);
  if (!m) index.set(key, (m = new Map<string, T>()));
  m.set(name, obj);
};

const removeFrom = <T>(index: Map<string, Map<string, T>>, key: string, name: string): void => {
  const m = index.get(key);
  if (!m) return;
  m.delete(name);
  if (m.size === 0) index.delete(key);
};

export class Member {
  readonly namespaces: Reflector<V1Namespace>;
  readonly services: Reflector<V1Service>;
  readonly exports: Reflector<ServiceExport & KubernetesObject>;
  readonly slices: Reflector<V1EndpointSlice>;
  readonly imports: Reflector<ServiceImport & KubernetesObject>;
  /** Kubernetes-made slices of each Service, by key. */
  private readonly sourceSlices = new Map<string, Map<string, V1EndpointSlice>>();
  /** Meridian's imported slices, by key. */
  private readonly ownedSlices = new Map<string, Map<string, V1EndpointSlice>>();
  private healthState: MemberHealth = { state: "starting" };
  private lastOk = Date.now();
  private probeTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  lastHeartbeat: Date | undefined;
  kubernetesVersion: string | undefined;

  constructor(readonly opts: MemberOptions) {
    const rest = opts.rest;
    const lifecycle = (resource: string) => (e: { kind: string; error?: unknown }) => {
      if (e.kind === "watch-error") {
        opts.onWatchRestart?.(resource);
        if (e.error instanceof ApiError && (e.error.code === 401 || e.error.code === 403)) {
          this.setHealth({ state: "unauthorized", error: e.error.message });
        }
      } else if (e.kind === "relist") {
        opts.onWatchRestart?.(resource);
      }
    };
    this.namespaces = new Reflector<V1Namespace>(rest, Resources.namespaces, {
      onEvent: (e) => {
        if (e.type !== "MODIFIED") opts.onNamespace(e.object.metadata!.name!);
      },
      onLifecycle: lifecycle("namespaces"),
    });
    this.services = new Reflector<V1Service>(rest, Resources.services, {
      onEvent: (e) => this.onService(e),
      onLifecycle: lifecycle("services"),
    });
    this.exports = new Reflector<ServiceExport & KubernetesObject>(rest, Resources.serviceExports, {
      onEvent: (e) => opts.onKey(serviceKey(e.object.metadata.namespace!, e.object.metadata.name!), "export"),
      onLifecycle: lifecycle("serviceexports"),
    });
    this.slices = new Reflector<V1EndpointSlice>(rest, Resources.endpointSlices, {
      onEvent: (e) => this.onSlice(e),
      onLifecycle: lifecycle("endpointslices"),
    });
    this.imports = new Reflector<ServiceImport & KubernetesObject>(rest, Resources.serviceImports, {
      labelSelector: `${LABEL_MANAGED_BY}=${opts.controllerName}`,
      onEvent: (e) => opts.onKey(serviceKey(e.object.metadata.namespace!, e.object.metadata.name!), "owned"),
      onLifecycle: lifecycle("serviceimports"),
    });
  }

  get clusterId(): string {
    return this.opts.clusterId;
  }

  get health(): MemberHealth {
    return this.healthState;
  }

  /** Synced caches and a reachable API with accepted credentials: its state counts. */
  get available(): boolean {
    return this.healthState.state === "ready" && this.synced;
  }

  get synced(): boolean {
    return (
      this.namespaces.synced &&
      this.services.synced &&
      this.exports.synced &&
      this.slices.synced &&
      this.imports.synced
    );
  }

  start(): void {
    for (const r of [this.namespaces, this.services, this.exports, this.slices, this.imports]) r.start();
    void this.probe();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.probeTimer) clearTimeout(this.probeTimer);
    await Promise.all(
      [this.namespaces, this.services, this.exports, this.slices, this.imports].map((r) => r.stop()),
    );
    this.opts.rest.close();
  }

  private setHealth(h: MemberHealth): void {
    const changed = h.state !== this.healthState.state;
    this.healthState = h;
    if (changed) this.opts.onHealthChange(this);
  }

  /**
   * Probes /readyz every second. Unreachable is declared only after `unreachableAfterMs` without a
   * successful probe, so one lost packet does not withdraw a cluster's endpoints everywhere.
   */
  private async probe(): Promise<void> {
    if (this.stopped) return;
    const interval = this.opts.probeIntervalMs ?? 1000;
    try {
      await this.opts.rest.request("GET", "/readyz", { timeoutMs: Math.max(500, interval) });
      const version = await this.versionOnce();
      this.kubernetesVersion = version ?? this.kubernetesVersion;
      this.lastOk = Date.now();
      this.lastHeartbeat = new Date();
      if (this.healthState.state !== "unauthorized" || (await this.credentialsAccepted()))
        this.setHealth({ state: "ready" });
    } catch (err) {
      if (err instanceof ApiError && (err.code === 401 || err.code === 403)) {
        this.lastOk = Date.now();
        this.setHealth({ state: "unauthorized", error: err.message });
      } else if (Date.now() - this.lastOk >= this.opts.unreachableAfterMs) {
        const error = err instanceof Error ? err.message : String(err);
        this.setHealth(
          this.healthState.state === "unreachable"
            ? this.healthState
            : { state: "unreachable", since: this.lastOk, error },
        );
      }
    }
    this.probeTimer = setTimeout(() => void this.probe(), interval);
  }

  private versionChecked = false;
  private async versionOnce(): Promise<string | undefined> {
    if (this.versionChecked) return undefined;
    this.versionChecked = true;
    const v = await this.opts.rest.request<{ gitVersion?: string }>("GET", "/version", { timeoutMs: 2000 });
    return v.gitVersion;
  }

  /** After a 401/403, /readyz alone does not prove the credentials work again: read something. */
  private async credentialsAccepted(): Promise<boolean> {
    try {
      await this.opts.rest.request("GET", "/apis/multicluster.x-k8s.io/v1beta1/serviceexports", {
        query: { limit: 1 },
        timeoutMs: 2000,
      });
      return true;
    } catch {
      return false;
    }
  }

  private onService(e: ReflectorEvent<V1Service>): void {
    const md = e.object.metadata!;
    const owned =
      md.labels?.[LABEL_MANAGED_BY] === this.opts.controllerName
        ? md.labels[LABEL_MERIDIAN_SERVICE_NAME]
        : undefined;
    this.opts.onKey(serviceKey(md.namespace!, owned ?? md.name!), owned ? "owned" : "export");
  }

  private sliceKey(slice: V1EndpointSlice): { key: string; owned: boolean } | undefined {
    const md = slice.metadata!;
    const labels = md.labels ?? {};
    if (labels[LABEL_MANAGED_BY] === this.opts.controllerName && labels[LABEL_MERIDIAN_SERVICE_NAME]) {
      return { key: serviceKey(md.namespace!, labels[LABEL_MERIDIAN_SERVICE_NAME]), owned: true };
    }
    const svc = labels[LABEL_KUBERNETES_SERVICE_NAME];
    if (svc && labels[LABEL_SERVICE_NAME] === undefined)
      return { key: serviceKey(md.namespace!, svc), owned: false };
    return undefined;
  }

  private onSlice(e: ReflectorEvent<V1EndpointSlice>): void {
    const name = e.object.metadata!.name!;
    const before = e.old ? this.sliceKey(e.old) : undefined;
    if (before) removeFrom(before.owned ? this.ownedSlices : this.sourceSlices, before.key, name);
    const after = this.sliceKey(e.object);
    if (after && e.type !== "DELETED")
      addTo(after.owned ? this.ownedSlices : this.sourceSlices, after.key, name, e.object);
    const key = after ?? before;
    if (key) this.opts.onKey(key.key, key.owned ? "owned" : "endpoints");
  }

  namespaceExists(namespace: string): boolean {
    const ns = this.namespaces.get(undefined, namespace);
    return ns !== undefined && ns.status?.phase !== "Terminating";
  }

  sourceSlicesOf(key: string): V1EndpointSlice[] {
    return [...(this.sourceSlices.get(key)?.values() ?? [])];
  }

  owned(namespace: string, name: string, derivedName: string): OwnedObjects {
    const key = serviceKey(namespace, name);
    const derived = this.services.get(namespace, derivedName);
    return {
      serviceImport: this.imports.get(namespace, name),
      derivedService:
        derived?.metadata?.labels?.[LABEL_MANAGED_BY] === this.opts.controllerName ? derived : undefined,
      endpointSlices: new Map(this.ownedSlices.get(key) ?? []),
    };
  }

  /** Every key this member exports or holds Meridian objects for. */
  keys(): Set<string> {
    const keys = new Set<string>();
    for (const e of this.exports.values()) keys.add(serviceKey(e.metadata.namespace!, e.metadata.name!));
    for (const i of this.imports.values()) keys.add(serviceKey(i.metadata.namespace!, i.metadata.name!));
    for (const k of this.ownedSlices.keys()) keys.add(k);
    return keys;
  }
}
