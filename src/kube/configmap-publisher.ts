/**
 * Publishes a document that a component computes as one key of a ConfigMap in its own cluster:
 * rewritten only when the document changes (optionally also every `refreshEvery` intervals, so
 * readers can tell a quiet component from a dead one), never more often than once per interval.
 * Gateway routing reports and component stats are written this way.
 */
import type { KubernetesObject, V1ConfigMap } from "@kubernetes/client-node";
import { Applier } from "./applier.js";
import type { RestClient } from "./rest.js";

export interface ConfigMapPublisherOptions<T> {
  rest: RestClient;
  fieldManager: string;
  namespace: string;
  name: string;
  key: string;
  /** The document now. */
  read: () => T | Promise<T>;
  /** What is written, from the document (e.g. with a time stamp); the document itself by default. */
  stamp?: (doc: T) => unknown;
  onError: (err: unknown) => void;
  intervalMs: number;
  /** Rewrite an unchanged document after this many intervals (default: never). */
  refreshEvery?: number;
}

export class ConfigMapPublisher<T> {
  private readonly applier: Applier;
  private timer: NodeJS.Timeout | undefined;
  private last = "";
  private lastWrite = 0;

  constructor(private readonly opts: ConfigMapPublisherOptions<T>) {
    this.applier = new Applier(opts.rest, opts.fieldManager);
  }

  start(): void {
    const tick = async (): Promise<void> => {
      await this.publish().catch(this.opts.onError);
      this.timer = setTimeout(() => void tick(), this.opts.intervalMs);
      this.timer.unref();
    };
    void tick();
  }

  stop(): void {
    clearTimeout(this.timer);
  }

  async publish(): Promise<void> {
    const doc = await this.opts.read();
    const content = JSON.stringify(doc);
    const refresh = this.opts.refreshEvery;
    const due = refresh !== undefined && Date.now() - this.lastWrite >= refresh * this.opts.intervalMs;
    if (content === this.last && !due) return;
    const configMap: V1ConfigMap & KubernetesObject = {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: this.opts.name, namespace: this.opts.namespace },
      data: { [this.opts.key]: this.opts.stamp ? JSON.stringify(this.opts.stamp(doc)) : content },
    };
    await this.applier.apply(configMap);
    this.last = content;
    this.lastWrite = Date.now();
  }
}
