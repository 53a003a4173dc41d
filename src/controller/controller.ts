/**
 * The mcs-controller: watches the cluster registry in the hub and, through it, every member; turns
 * ServiceExports into ServiceImports, derived Services and EndpointSlices in every member; writes
 * export conditions and Cluster status. Work is level-triggered and keyed by `namespace/name`:
 * every event only enqueues keys, and one reconcile computes the desired state of a key with the
 * pure `desiredState` and applies it member by member.
 */
import type { KubernetesObject, V1Service } from "@kubernetes/client-node";
import { CredentialsError, errorText, readMemberCredentials } from "../kube/member-credentials.js";
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { Logger } from "pino";
import { Applier } from "../kube/applier.js";
import { Reflector } from "../kube/reflector.js";
import { ApiError, Resources, RestClient } from "../kube/rest.js";
import { WorkQueue } from "../kube/workqueue.js";
import { MCS_API_VERSION } from "../api/mcs.js";
import {
  ANNOTATION_GATEWAY_LISTEN_PORTS,
  CLUSTER_API_VERSION,
  GATEWAY_SERVICE,
  MEMBER_NAMESPACE,
  parseListenPorts,
  type Cluster,
} from "../api/meridian.js";
import type { ImportingGateway } from "./endpoints.js";
import { gatewayAddresses, ListenPortAllocator } from "./gateway-ports.js";
import { portRef } from "./ports.js";
import {
  DEFAULT_CONTROLLER_NAME,
  DEFAULT_REFUSED_NAMESPACES,
  desiredState,
  type ClusterObservation,
  type DesiredService,
} from "./desired.js";
import { Member } from "./member.js";
import { clusterStatus } from "./cluster-status.js";
import { desiredPeersConfigMap } from "./peers.js";
import { derivedServiceName, parseServiceKey, serviceKey } from "./names.js";

export interface ControllerOptions {
  hub: RestClient;
  /** Namespace in the hub holding Cluster objects and their credential Secrets. */
  namespace: string;
  log: Logger;
  registry?: Registry;
  controllerName?: string;
  refusedNamespaces?: readonly string[];
  /** How long a member may be unreachable before its endpoints are withdrawn everywhere. */
  unreachableAfterMs?: number;
  concurrency?: number;
  /** Full resync period (every key re-reconciled), jittered. */
  resyncMs?: number;
  /** Longest wait at start for members to sync before reconciling (unreachable ones excepted). */
  startupSyncTimeoutMs?: number;
}

interface MemberEntry {
  member: Member;
  cluster: Cluster;
  /** Secret content the member's client was built from, to notice rotation. */
  credentialsVersion: string;
}

type Trigger = "export" | "endpoints" | "owned" | "membership" | "resync";

const FIELD_MANAGER = "meridian-controller";
const GATEWAY_SERVICE_KEY = `${MEMBER_NAMESPACE}/${GATEWAY_SERVICE}`;

export class Controller {
  private readonly clusters: Reflector<Cluster & KubernetesObject>;
  private readonly members = new Map<string, MemberEntry>();
  private readonly queue: WorkQueue;
  private readonly hubApplier: Applier;
  private readonly appliers = new Map<string, Applier>();
  private readonly pending = new Map<string, { since: number; trigger: Trigger }>();
  /** The latest propagation time of each service, newest last, for the dashboard. */
  private readonly recentPropagation = new Map<string, { seconds: number; at: string }>();
  private readonly controllerName: string;
  private readonly unreachableAfterMs: number;
  private started = false;
  private readyToReconcile = false;
  private readyWaiters: (() => void)[] = [];
  private timers: NodeJS.Timeout[] = [];
  readonly metrics: ReturnType<typeof createMetrics>;

  constructor(private readonly opts: ControllerOptions) {
    this.controllerName = opts.controllerName ?? DEFAULT_CONTROLLER_NAME;
    this.unreachableAfterMs = opts.unreachableAfterMs ?? 5000;
    this.metrics = createMetrics(opts.registry ?? new Registry());
    this.hubApplier = new Applier(opts.hub, FIELD_MANAGER);
    this.queue = new WorkQueue((key) => this.reconcile(key), {
      concurrency: opts.concurrency ?? 8,
      onResult: (key, result, seconds, error) => {
        this.metrics.reconciles.inc({ result });
        this.metrics.reconcileSeconds.observe(seconds);
        if (result === "error") {
          this.opts.log.warn({ service: key, err: errorText(error) }, "reconcile failed; will retry");
        }
      },
    });
    this.clusters = new Reflector<Cluster & KubernetesObject>(opts.hub, Resources.clusters, {
      namespace: opts.namespace,
      onEvent: (e) => {
        const name = e.object.metadata.name!;
        if (e.type === "DELETED") this.track(this.serialized(name, () => this.removeMember(name)));
        else this.track(this.serialized(name, () => this.ensureMember(name)));
      },
      onLifecycle: (e) => {
        if (e.kind === "watch-error")
          this.opts.log.warn({ err: errorText(e.error) }, "hub watch of Clusters failed; retrying");
      },
    });
  }

  async start(): Promise<void> {
    this.started = true;
    this.clusters.start();
    await this.clusters.waitForSync(60_000);
    await this.waitForMembers(this.opts.startupSyncTimeoutMs ?? 15_000);
    this.readyToReconcile = true;
    for (const w of this.readyWaiters.splice(0)) w();
    this.enqueueAll("resync");
    const resync = this.opts.resyncMs ?? 5 * 60_000;
    this.timers.push(setInterval(() => this.enqueueAll("resync"), resync * (1 + Math.random() * 0.1)));
    this.timers.push(setInterval(() => void this.writeClusterStatuses(), 5000));
    // Availability also changes without a health event (a cache finishing its first list).
    this.timers.push(setInterval(() => this.checkAvailability(), 250));
    void this.writeClusterStatuses();
  }

  async stop(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    clearTimeout(this.peersTimer);
    this.queue.stop();
    await this.clusters.stop();
    await Promise.all([...this.members.values()].map((m) => m.member.stop()));
  }

  /** Resolves when no work is queued or running (for tests and benchmarks). */
  idle(): Promise<void> {
    return this.queue.idle();
  }

  get memberCount(): number {
    return this.members.size;
  }

  /**
   * Waits until every registered member is available or has definitely failed (unreachable,
   * unauthorized), so the first reconciles see the whole clusterset: reconciling earlier would
   * withdraw a slow member's endpoints and rewrite every export's status on each restart.
   */
  private async waitForMembers(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    // Members are registered asynchronously (their credentials are read first).
    while (this.registering.size > 0)
      await Promise.race([Promise.all(this.registering), sleepMs(deadline - Date.now())]);
    while (Date.now() < deadline) {
      const entries = [...this.members.values()];
      const settled = entries.every(
        (e) =>
          e.member.available ||
          e.member.health.state === "unreachable" ||
          e.member.health.state === "unauthorized",
      );
      if (settled) return;
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  // ------------------------------------------------------------------------------------------
  // Membership
  // ------------------------------------------------------------------------------------------

  private readonly memberChains = new Map<string, Promise<void>>();

  /** Runs membership changes of one Cluster one at a time, in event order. */
  private serialized(name: string, change: () => Promise<void>): Promise<void> {
    const next = (this.memberChains.get(name) ?? Promise.resolve()).then(change, change);
    this.memberChains.set(name, next);
    void next.finally(() => {
      if (this.memberChains.get(name) === next) this.memberChains.delete(name);
    });
    return next;
  }

  private async ensureMember(name: string): Promise<void> {
    // The newest version of the Cluster: events queued behind a slow change may be stale.
    const cluster = this.clusters.get(this.opts.namespace, name);
    if (!cluster) return;
    const existing = this.members.get(name);
    try {
      const creds = await readMemberCredentials(this.opts.hub, this.opts.namespace, cluster);
      if (
        existing &&
        existing.credentialsVersion === creds.version &&
        existing.cluster.spec.clusterID === cluster.spec.clusterID
      ) {
        existing.cluster = cluster;
        this.schedulePeers();
        return;
      }
      if (existing) {
        await existing.member.stop();
        // The new client starts unsynced: its first availability must trigger a full reconcile.
        this.lastAvailable.delete(name);
      }
      const member = new Member({
        clusterId: cluster.spec.clusterID,
        rest: new RestClient(name, creds.credentials),
        controllerName: this.controllerName,
        unreachableAfterMs: this.unreachableAfterMs,
        onKey: (key, trigger) => this.onKey(key, trigger),
        onNamespace: (ns) => this.enqueueNamespace(ns),
        onHealthChange: (m) => this.onMemberHealth(name, m),
        onWatchRestart: (resource) =>
          this.metrics.watchRestarts.inc({ cluster: cluster.spec.clusterID, resource }),
      });
      this.members.set(name, { member, cluster, credentialsVersion: creds.version });
      this.appliers.set(cluster.spec.clusterID, new Applier(member.opts.rest, FIELD_MANAGER));
      member.start();
      this.opts.log.info({ cluster: name, clusterID: cluster.spec.clusterID }, "watching member");
      this.schedulePeers();
    } catch (err) {
      const reason = err instanceof CredentialsError ? err.reason : "CredentialsUnavailable";
      this.opts.log.error({ cluster: name, reason, err: errorText(err) }, "cannot watch member");
      await this.writeClusterStatus(cluster, undefined, { reason, message: errorText(err) });
    }
  }

  private async removeMember(name: string): Promise<void> {
    const entry = this.members.get(name);
    if (!entry) return;
    this.members.delete(name);
    // A member that joins again under this name must count as newly available.
    this.lastAvailable.delete(name);
    this.appliers.delete(entry.cluster.spec.clusterID);
    await entry.member.stop();
    this.opts.log.info({ cluster: name }, "member left; withdrawing its endpoints everywhere");
    this.enqueueAll("membership");
    this.schedulePeers();
  }

  private readonly lastAvailable = new Map<string, boolean>();
  private readonly registering = new Set<Promise<void>>();

  private track(p: Promise<void>): void {
    this.registering.add(p);
    void p.finally(() => this.registering.delete(p));
  }

  private checkAvailability(): void {
    for (const [name, { member }] of this.members) {
      if (this.lastAvailable.get(name) !== member.available) this.onMemberHealth(name, member);
    }
  }

  private onMemberHealth(name: string, member: Member): void {
    const was = this.lastAvailable.get(name);
    this.lastAvailable.set(name, member.available);
    this.metrics.memberAvailable.set({ cluster: member.clusterId }, member.available ? 1 : 0);
    this.opts.log.info(
      { cluster: name, health: member.health, synced: member.synced },
      "member health changed",
    );
    if (this.started && was !== member.available) this.enqueueAll("membership");
    if (member.available) this.schedulePeers();
    const entry = this.members.get(name);
    if (entry) void this.writeClusterStatus(entry.cluster, member);
  }

  private peersTimer: NodeJS.Timeout | undefined;
  /** Hash of the peer list last written to each member, so an unchanged list is not rewritten. */
  private readonly peersWritten = new Map<string, string>();

  /** Coalesces membership changes into one write of the peer list to every member. */
  private schedulePeers(): void {
    if (this.peersTimer) return;
    this.peersTimer = setTimeout(() => {
      this.peersTimer = undefined;
      void this.writePeers();
    }, 100);
  }

  private async writePeers(): Promise<void> {
    const desired = desiredPeersConfigMap([...this.members.values()].map((e) => e.cluster));
    const content = JSON.stringify(desired.data);
    await Promise.all(
      this.availableMembers().map(async (member) => {
        if (this.peersWritten.get(member.clusterId) === content) return;
        try {
          await this.applier(member.clusterId).apply(desired);
          this.peersWritten.set(member.clusterId, content);
        } catch (err) {
          if (err instanceof ApiError && err.code === 403) {
            // Joined before the controller kept a peer list there: retrying cannot help.
            this.peersWritten.set(member.clusterId, content);
            this.opts.log.error(
              { cluster: member.clusterId, err: errorText(err) },
              "not allowed to write the gateway peer list; run 'meridian join' for this cluster again",
            );
            return;
          }
          this.opts.log.warn(
            { cluster: member.clusterId, err: errorText(err) },
            "could not write the gateway peer list; will retry",
          );
          setTimeout(() => this.schedulePeers(), 2000).unref();
        }
      }),
    );
  }

  // ------------------------------------------------------------------------------------------
  // Keys
  // ------------------------------------------------------------------------------------------

  private availableMembers(): Member[] {
    return [...this.members.values()].map((e) => e.member).filter((m) => m.available);
  }

  /** Whether any member exports the key or holds Meridian objects for it. */
  private interesting(key: string): boolean {
    const parsed = parseServiceKey(key);
    if (!parsed) return false;
    for (const { member } of this.members.values()) {
      if (
        member.exports.get(parsed.namespace, parsed.name) ||
        member.imports.get(parsed.namespace, parsed.name)
      )
        return true;
      if (
        member.owned(parsed.namespace, parsed.name, derivedServiceName(parsed.namespace, parsed.name))
          .endpointSlices.size > 0
      )
        return true;
    }
    return false;
  }

  private onKey(key: string, trigger: Trigger): void {
    // A member's gateway appearing, moving or going changes every import's slices there.
    if (key === GATEWAY_SERVICE_KEY) return this.enqueueAll("membership");
    if (trigger === "endpoints" && !this.interesting(key)) return;
    if (trigger === "export" && !this.interesting(key)) return;
    this.enqueue(key, trigger);
  }

  private enqueue(key: string, trigger: Trigger): void {
    if (!this.pending.has(key)) this.pending.set(key, { since: performance.now(), trigger });
    this.queue.add(key);
  }

  private enqueueNamespace(namespace: string): void {
    for (const key of this.allKeys()) if (key.startsWith(`${namespace}/`)) this.enqueue(key, "membership");
  }

  private allKeys(): Set<string> {
    const keys = new Set<string>();
    for (const { member } of this.members.values()) for (const k of member.keys()) keys.add(k);
    return keys;
  }

  private enqueueAll(trigger: Trigger): void {
    for (const key of this.allKeys()) this.enqueue(key, trigger);
  }

  // ------------------------------------------------------------------------------------------
  // Reconcile
  // ------------------------------------------------------------------------------------------

  private async reconcile(key: string): Promise<void> {
    if (!this.readyToReconcile) await new Promise<void>((r) => this.readyWaiters.push(r));
    const parsed = parseServiceKey(key);
    if (!parsed) return;
    const { namespace, name } = parsed;
    const derivedName = derivedServiceName(namespace, name);
    const members = this.availableMembers();
    const observations = members.map((m) => this.observe(m, namespace, name, derivedName));
    let desired = this.desiredFor(namespace, name, observations, members);
    const errors: unknown[] = [];
    const appliedIn: string[] = [];

    // Derived Services first: the API server allocates their cluster IPs synchronously, so the
    // import can carry its VIPs in this same pass instead of waiting for the watch event.
    let allocated = false;
    // What this pass wrote, so the second pass compares against it rather than a cache that has
    // not seen the write yet (which would write the same object again).
    const derivedWritten = new Map<string, V1Service>();
    await Promise.all(
      desired.imports.map(async (imp) => {
        if (!imp.derivedService) return;
        const member = members.find((m) => m.clusterId === imp.clusterId)!;
        const live = member.owned(namespace, name, derivedName).derivedService;
        try {
          const res = await this.applier(imp.clusterId).apply(imp.derivedService, live);
          if (!res.applied) return;
          derivedWritten.set(imp.clusterId, res.object);
          const obs = observations.find((o) => o.clusterId === imp.clusterId)!;
          if ((res.object as V1Service).spec?.clusterIPs && !live?.spec?.clusterIPs) {
            obs.derivedService = res.object;
            allocated = true;
          }
        } catch (err) {
          errors.push(err);
        }
      }),
    );
    if (allocated) desired = this.desiredFor(namespace, name, observations, members);

    await Promise.all(
      members.map(async (member) => {
        try {
          if (await this.applyToMember(member, desired, derivedName, derivedWritten.get(member.clusterId)))
            appliedIn.push(member.clusterId);
        } catch (err) {
          errors.push(err);
        }
      }),
    );
    this.recordPropagation(key, appliedIn, errors.length === 0);
    if (errors.length > 0) {
      for (const err of errors) this.metrics.errors.inc({ cluster: errorCluster(err) });
      throw new AggregateError(errors, `${key}: ${errors.map(errorText).join("; ")}`);
    }
  }

  /**
   * The desired state, in gateway mode for members that run a gateway: their imported slices point
   * at it, on listen ports allocated here. Ports come from a first, pod-mode pass.
   */
  private desiredFor(
    namespace: string,
    name: string,
    observations: ClusterObservation[],
    members: Member[],
  ): DesiredService {
    const key = serviceKey(namespace, name);
    const desired = desiredState({ namespace, name, clusters: observations }, this.reconcileOptions());
    const gateways = new Map<string, ImportingGateway>();
    for (const member of members) {
      const addresses = gatewayAddresses(member);
      const imp = desired.imports.find((i) => i.clusterId === member.clusterId);
      if (addresses.length === 0 || imp?.serviceImport.spec.type !== "ClusterSetIP") {
        this.allocators.get(member.clusterId)?.release(key);
        continue;
      }
      const refs = imp.serviceImport.spec.ports.map((p) => portRef(p.name, p.protocol));
      gateways.set(member.clusterId, {
        addresses,
        listenPorts: this.listenPorts(member).allocate(key, refs),
      });
    }
    if (gateways.size === 0) return desired;
    return desiredState(
      { namespace, name, clusters: observations, endpointMode: { kind: "gateway", gateways } },
      this.reconcileOptions(),
    );
  }

  private readonly allocators = new Map<string, ListenPortAllocator>();

  /** The member's gateway listen ports, seeded from the imports already there (a restart keeps them). */
  private listenPorts(member: Member): ListenPortAllocator {
    let allocator = this.allocators.get(member.clusterId);
    if (!allocator) {
      allocator = new ListenPortAllocator();
      for (const imp of member.imports.values())
        allocator.seed(
          serviceKey(imp.metadata.namespace!, imp.metadata.name!),
          parseListenPorts(imp.metadata.annotations?.[ANNOTATION_GATEWAY_LISTEN_PORTS]),
        );
      this.allocators.set(member.clusterId, allocator);
    }
    return allocator;
  }

  private reconcileOptions() {
    return {
      controllerName: this.controllerName,
      refusedNamespaces: this.opts.refusedNamespaces ?? DEFAULT_REFUSED_NAMESPACES,
    };
  }

  private applier(clusterId: string): Applier {
    const a = this.appliers.get(clusterId);
    if (!a) throw new Error(`no client for cluster ${clusterId}`);
    return a;
  }

  private observe(member: Member, namespace: string, name: string, derivedName: string): ClusterObservation {
    const owned = member.owned(namespace, name, derivedName);
    return {
      clusterId: member.clusterId,
      namespaceExists: member.namespaceExists(namespace),
      service: member.services.get(namespace, name),
      serviceExport: member.exports.get(namespace, name),
      endpointSlices: member.sourceSlicesOf(serviceKey(namespace, name)),
      derivedService: owned.derivedService,
      serviceImport: owned.serviceImport,
    };
  }

  /** Brings one member in line with the desired state of one key; true when anything was written. */
  private async applyToMember(
    member: Member,
    desired: DesiredService,
    derivedName: string,
    derivedJustWritten?: V1Service,
  ): Promise<boolean> {
    const applier = this.applier(member.clusterId);
    const cached = member.owned(desired.namespace, desired.name, derivedName);
    const owned = derivedJustWritten ? { ...cached, derivedService: derivedJustWritten } : cached;
    const wanted = desired.imports.find((i) => i.clusterId === member.clusterId);
    const wrote = wanted
      ? await this.applyImport(applier, wanted, owned)
      : await this.removeImport(applier, owned);
    await this.applyExportStatus(applier, member, desired);
    return wrote;
  }

  /** The import, its derived Service and its slices, as wanted; stale slices go. */
  private async applyImport(
    applier: Applier,
    wanted: DesiredService["imports"][number],
    owned: ReturnType<Member["owned"]>,
  ): Promise<boolean> {
    let wrote = false;
    if (wanted.derivedService)
      wrote = (await applier.apply(wanted.derivedService, owned.derivedService)).applied || wrote;
    wrote = (await applier.apply(wanted.serviceImport, owned.serviceImport)).applied || wrote;
    const keep = new Set(wanted.endpointSlices.map((s) => s.metadata!.name!));
    const sliceWrites = await Promise.all([
      ...wanted.endpointSlices.map(
        async (slice) =>
          (await applier.apply(slice, owned.endpointSlices.get(slice.metadata!.name!))).applied,
      ),
      ...[...owned.endpointSlices].filter(([n]) => !keep.has(n)).map(([, slice]) => applier.delete(slice)),
    ]);
    wrote = sliceWrites.some(Boolean) || wrote;
    if (!wanted.derivedService && owned.derivedService)
      wrote = (await applier.delete(owned.derivedService)) || wrote;
    return wrote;
  }

  /** Everything Meridian owns for a service in a member that should import nothing. */
  private async removeImport(applier: Applier, owned: ReturnType<Member["owned"]>): Promise<boolean> {
    let wrote = false;
    for (const slice of owned.endpointSlices.values()) wrote = (await applier.delete(slice)) || wrote;
    if (owned.serviceImport) wrote = (await applier.delete(owned.serviceImport)) || wrote;
    if (owned.derivedService) wrote = (await applier.delete(owned.derivedService)) || wrote;
    return wrote;
  }

  private async applyExportStatus(applier: Applier, member: Member, desired: DesiredService): Promise<void> {
    const exp = desired.exports.find((e) => e.clusterId === member.clusterId);
    const live = member.exports.get(desired.namespace, desired.name);
    if (!exp || !live) return;
    const wrote = await applier.applyStatus(
      {
        apiVersion: MCS_API_VERSION,
        kind: "ServiceExport",
        metadata: { name: desired.name, namespace: desired.namespace },
      },
      { conditions: exp.conditions },
      live.status,
    );
    if (wrote)
      this.opts.log.debug(
        {
          service: desired.key,
          cluster: member.clusterId,
          conditions: exp.conditions,
          previous: live.status,
        },
        "export status written",
      );
  }

  private recordPropagation(key: string, appliedIn: string[], success: boolean): void {
    const p = this.pending.get(key);
    if (!p || !success) return;
    this.pending.delete(key);
    const seconds = (performance.now() - p.since) / 1000;
    const trigger = p.trigger === "endpoints" ? "endpoints" : p.trigger === "export" ? "export" : "other";
    for (const cluster of appliedIn) this.metrics.propagation.observe({ cluster, trigger }, seconds);
    this.recentPropagation.delete(key);
    this.recentPropagation.set(key, {
      seconds: Math.round(seconds * 1000) / 1000,
      at: new Date().toISOString(),
    });
    const oldest = this.recentPropagation.keys().next().value;
    if (this.recentPropagation.size > MAX_REPORTED_PROPAGATIONS && oldest !== undefined)
      this.recentPropagation.delete(oldest);
  }

  /** Latest propagation per service (bounded), as the controller's stats report carries it. */
  propagationReport(): Record<string, { seconds: number; at: string }> {
    return Object.fromEntries(this.recentPropagation);
  }

  // ------------------------------------------------------------------------------------------
  // Cluster status
  // ------------------------------------------------------------------------------------------

  private async writeClusterStatuses(): Promise<void> {
    await Promise.all([...this.members.values()].map((e) => this.writeClusterStatus(e.cluster, e.member)));
  }

  private async writeClusterStatus(
    cluster: Cluster,
    member: Member | undefined,
    failure?: { reason: string; message: string },
  ): Promise<void> {
    const status = clusterStatus({
      previous: cluster.status?.conditions ?? [],
      generation: cluster.metadata.generation,
      health: member?.health,
      synced: member?.synced ?? false,
      failure,
      now: new Date(),
    });
    const full = { ...status, ...memberStatusFields(member) };
    try {
      await this.hubApplier.applyStatus(
        {
          apiVersion: CLUSTER_API_VERSION,
          kind: "Cluster",
          metadata: { name: cluster.metadata.name, namespace: this.opts.namespace },
        },
        full,
        // Heartbeats are written at most every 5 s (the status timer), conditions when they change.
        this.clusters.get(this.opts.namespace, cluster.metadata.name!)?.status,
      );
    } catch (err) {
      this.opts.log.warn(
        { cluster: cluster.metadata.name, err: errorText(err) },
        "could not write Cluster status",
      );
    }
  }
}

/** What a Cluster's status reports of the member beyond its conditions (nothing known: zeros). */
function memberStatusFields(member: Member | undefined) {
  if (!member) return { exports: 0, imports: 0 };
  return {
    ...(member.lastHeartbeat ? { lastHeartbeatTime: member.lastHeartbeat } : {}),
    ...(member.kubernetesVersion ? { kubernetesVersion: member.kubernetesVersion } : {}),
    exports: member.synced ? member.exports.size : 0,
    imports: member.synced ? member.imports.size : 0,
  };
}

const sleepMs = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, Math.max(0, ms)));

/** Keeps the controller's stats ConfigMap far below the 1 MiB object limit. */
const MAX_REPORTED_PROPAGATIONS = 2000;

function errorCluster(err: unknown): string {
  return err instanceof ApiError ? "api" : "other";
}

function createMetrics(registry: Registry) {
  return {
    registry,
    reconciles: new Counter({
      name: "meridian_controller_reconcile_total",
      help: "Reconciles by result.",
      labelNames: ["result"],
      registers: [registry],
    }),
    reconcileSeconds: new Histogram({
      name: "meridian_controller_reconcile_duration_seconds",
      help: "Time to reconcile one multi-cluster service across every member.",
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    }),
    propagation: new Histogram({
      name: "meridian_controller_propagation_seconds",
      help: "From the first event that changed a service (an export, or its endpoints) to its import being applied in a member.",
      labelNames: ["cluster", "trigger"],
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    errors: new Counter({
      name: "meridian_controller_errors_total",
      help: "Failed writes.",
      labelNames: ["cluster"],
      registers: [registry],
    }),
    watchRestarts: new Counter({
      name: "meridian_controller_watch_restarts_total",
      help: "Watch restarts and relists per member and resource.",
      labelNames: ["cluster", "resource"],
      registers: [registry],
    }),
    memberAvailable: new Gauge({
      name: "meridian_controller_member_available",
      help: "1 when the member is reachable, authorised and synced.",
      labelNames: ["cluster"],
      registers: [registry],
    }),
  };
}
