/**
 * Everything the dashboard shows, gathered through the hub alone: the hub's Clusters, and in each
 * member (reached with the credentials the hub holds for the controller) its exports, imports,
 * imported slices, traffic policies and the reports Meridian's components publish there. Each
 * member is watched on its own; one that cannot be reached is shown as such, never blocks others.
 */
import type { KubernetesObject, V1ConfigMap, V1EndpointSlice, V1Namespace } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { LABEL_SERVICE_NAME, type ServiceExport, type ServiceImport } from "../api/mcs.js";
import { MEMBER_NAMESPACE, type Cluster } from "../api/meridian.js";
import { errorText, readMemberCredentials } from "../kube/member-credentials.js";
import { Reflector } from "../kube/reflector.js";
import { ApiError, Resources, resourcePath, RestClient } from "../kube/rest.js";
import type { TrafficPolicy } from "../gateway/kube-routes.js";
import { parseGatewayStatus, STATUS_CONFIGMAP } from "../gateway/kube-status.js";
import { parseStatsReport, statsConfigMapName } from "../observability/stats-report.js";
import type { ConnectionView } from "./web/view.js";
import type { CounterReport, ObservedClusterset, ObservedMember } from "./model.js";

const PROBE_INTERVAL_MS = 3000;
const PROBE_TIMEOUT_MS = 2500;

class WatchedMember {
  readonly exports: Reflector<ServiceExport & KubernetesObject>;
  readonly imports: Reflector<ServiceImport & KubernetesObject>;
  readonly slices: Reflector<V1EndpointSlice>;
  readonly policies: Reflector<TrafficPolicy>;
  readonly configMaps: Reflector<V1ConfigMap & KubernetesObject>;
  readonly namespaces: Reflector<V1Namespace>;
  connection: ConnectionView = { state: "connecting" };
  private probeTimer: NodeJS.Timeout | undefined;
  private readonly counters = new Map<string, CounterReport[]>();

  constructor(
    readonly rest: RestClient,
    readonly secretVersion: string,
    private readonly onChange: () => void,
  ) {
    const opts = { onEvent: () => onChange(), watchdogMs: 60_000 };
    this.exports = new Reflector(rest, Resources.serviceExports, opts);
    this.imports = new Reflector(rest, Resources.serviceImports, opts);
    this.slices = new Reflector(rest, Resources.endpointSlices, {
      ...opts,
      labelSelector: LABEL_SERVICE_NAME,
    });
    this.policies = new Reflector(rest, Resources.trafficPolicies, opts);
    this.namespaces = new Reflector(rest, Resources.namespaces, opts);
    this.configMaps = new Reflector(rest, Resources.configMaps, {
      ...opts,
      namespace: MEMBER_NAMESPACE,
      onEvent: (e) => {
        this.recordCounters(e.object);
        onChange();
      },
    });
  }

  private reflectors() {
    return [this.exports, this.imports, this.slices, this.policies, this.configMaps, this.namespaces];
  }

  start(): void {
    for (const r of this.reflectors()) r.start();
    void this.probe();
  }

  async stop(): Promise<void> {
    clearTimeout(this.probeTimer);
    await Promise.all(this.reflectors().map((r) => r.stop()));
  }

  private setConnection(c: ConnectionView): void {
    // While unreachable, the first failure's time and error stand.
    if (c.state === this.connection.state) return;
    this.connection = c;
    this.onChange();
  }

  private async probe(): Promise<void> {
    try {
      await this.rest.request("GET", "/version", { timeoutMs: PROBE_TIMEOUT_MS });
      this.setConnection({ state: "connected" });
    } catch (err) {
      const since = new Date().toISOString();
      const error =
        err instanceof ApiError && (err.code === 401 || err.code === 403)
          ? `the member rejects the credentials the hub holds (${err.message}); re-run 'meridian join'`
          : errorText(err);
      this.setConnection({ state: "unreachable", since, error });
    }
    this.probeTimer = setTimeout(() => void this.probe(), PROBE_INTERVAL_MS);
  }

  /** Keeps the two latest distinct counter reports per component, for rates. */
  private recordCounters(cm: V1ConfigMap & KubernetesObject): void {
    const report = parseStatsReport(cm);
    if (!report) return;
    const name = cm.metadata?.name ?? "";
    const history = this.counters.get(name) ?? [];
    if (history.at(-1)?.at === report.at) return;
    this.counters.set(name, [...history, report].slice(-2));
  }

  countersOf(component: string): CounterReport[] | undefined {
    return this.counters.get(statsConfigMapName(component));
  }
}

export interface CollectorOptions {
  hub: RestClient;
  namespace: string;
  log: Logger;
  /** Called (often) when anything observed may have changed; debounce on the other side. */
  onChange: () => void;
}

export class ClustersetCollector {
  private readonly clusters: Reflector<Cluster & KubernetesObject>;
  private readonly members = new Map<string, WatchedMember>();
  private readonly credentialErrors = new Map<string, string>();
  private hubError: string | undefined;
  private readonly chains = new Map<string, Promise<void>>();
  private propagation = new Map<string, { seconds: number; at: string }>();
  private propagationTimer: NodeJS.Timeout | undefined;

  constructor(private readonly opts: CollectorOptions) {
    this.clusters = new Reflector<Cluster & KubernetesObject>(opts.hub, Resources.clusters, {
      namespace: opts.namespace,
      onEvent: (e) => {
        const name = e.object.metadata.name!;
        this.serialized(name, () => this.sync(name));
        opts.onChange();
      },
      onLifecycle: (e) => {
        const before = this.hubError;
        if (e.kind === "watch-error") this.hubError = errorText(e.error);
        else if (e.kind === "listed") this.hubError = undefined;
        if (before !== this.hubError) opts.onChange();
      },
    });
  }

  start(): void {
    this.clusters.start();
    void this.pollPropagation();
  }

  async stop(): Promise<void> {
    clearTimeout(this.propagationTimer);
    await this.clusters.stop();
    await Promise.all([...this.members.values()].map((m) => m.stop()));
  }

  private serialized(name: string, change: () => Promise<void>): void {
    const next = (this.chains.get(name) ?? Promise.resolve()).then(change, change);
    this.chains.set(name, next);
  }

  /** Starts, restarts (new credentials) or stops watching one member. */
  private async sync(name: string): Promise<void> {
    const cluster = this.clusters.get(this.opts.namespace, name);
    const existing = this.members.get(name);
    if (!cluster) {
      this.members.delete(name);
      this.credentialErrors.delete(name);
      await existing?.stop();
      this.opts.onChange();
      return;
    }
    try {
      const { credentials, version } = await readMemberCredentials(
        this.opts.hub,
        this.opts.namespace,
        cluster,
      );
      if (existing?.secretVersion === version) return;
      await existing?.stop();
      const member = new WatchedMember(new RestClient(name, credentials), version, this.opts.onChange);
      this.members.set(name, member);
      this.credentialErrors.delete(name);
      member.start();
    } catch (err) {
      this.opts.log.warn({ cluster: name, err: errorText(err) }, "cannot read the member's credentials");
      this.credentialErrors.set(name, errorText(err));
      this.members.delete(name);
      await existing?.stop();
      // The Secret may appear later; try again.
      setTimeout(() => this.serialized(name, () => this.sync(name)), 5000).unref();
    }
    this.opts.onChange();
  }

  /** The controller's recent propagation times, from its report in the hub. */
  private async pollPropagation(): Promise<void> {
    try {
      const cm = await this.opts.hub.request<V1ConfigMap & KubernetesObject>(
        "GET",
        resourcePath(Resources.configMaps, this.opts.namespace, statsConfigMapName("controller")),
      );
      const report = parseStatsReport(cm);
      const next = new Map(Object.entries(report?.propagation ?? {}));
      if (JSON.stringify([...next]) !== JSON.stringify([...this.propagation])) {
        this.propagation = next;
        this.opts.onChange();
      }
    } catch {
      // No report yet (or no access): the dashboard shows no propagation times.
    }
    this.propagationTimer = setTimeout(() => void this.pollPropagation(), 5000);
  }

  observe(now = new Date()): ObservedClusterset {
    return {
      now,
      hub: { reachable: this.hubError === undefined, error: this.hubError, namespace: this.opts.namespace },
      members: this.clusters.list().map((cluster) => this.observeMember(cluster)),
      propagation: this.propagation,
    };
  }

  private observeMember(cluster: Cluster & KubernetesObject): ObservedMember {
    const name = cluster.metadata.name!;
    const m = this.members.get(name);
    const credentialError = this.credentialErrors.get(name);
    const known = { name, cluster, exports: [], imports: [], slices: [], policies: [], namespaces: [] };
    if (credentialError) return { ...known, connection: { state: "no-credentials", error: credentialError } };
    if (!m) return { ...known, connection: { state: "connecting" } };
    return {
      ...known,
      connection: m.connection,
      exports: m.exports.list(),
      imports: m.imports.list(),
      slices: m.slices.list(),
      policies: m.policies.list(),
      namespaces: m.namespaces.list().map((n) => n.metadata!.name!),
      gateway: parseGatewayStatus(m.configMaps.get(MEMBER_NAMESPACE, STATUS_CONFIGMAP)),
      gatewayCounters: m.countersOf("gateway"),
      dnsCounters: m.countersOf("dns"),
    };
  }
}
