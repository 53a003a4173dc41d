/**
 * A reflector keeps an in-memory copy of one resource of one cluster: a paginated list, then a
 * watch with bookmarks and a server-side timeout, resumed from the last resourceVersion. It relists
 * on 410 Gone, backs off with jitter on every error, reconnects when the stream goes silent, and
 * relists periodically to repair anything missed. It never stops on its own.
 *
 * Handlers receive every change (synthetic ones after a relist, as a diff against the cache) and
 * should only enqueue keys: the reconcile happens elsewhere.
 */
import type { KubernetesObject } from "@kubernetes/client-node";
import { ApiError, resourcePath, type ResourceRef, type RestClient } from "./rest.js";

export type EventType = "ADDED" | "MODIFIED" | "DELETED";

export interface ReflectorEvent<T> {
  type: EventType;
  object: T;
  /** The cached object before a MODIFIED or DELETED. */
  old?: T;
}

export type ReflectorLifecycle =
  | { kind: "listed"; items: number }
  | { kind: "watch-error"; error: unknown }
  | { kind: "relist"; reason: "gone" | "resync" | "watchdog" | "error" };

export interface ReflectorOptions<T> {
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
  /** Turns a raw object into what is cached (e.g. drops managedFields). Default: drop managedFields. */
  transform?: (obj: KubernetesObject) => T;
  onEvent?: (event: ReflectorEvent<T>) => void;
  onLifecycle?: (event: ReflectorLifecycle) => void;
  pageSize?: number;
  /** Full relist period, jittered by up to +20%. */
  resyncMs?: number;
  /** Reconnect when nothing (not even a bookmark) arrives for this long. */
  watchdogMs?: number;
  backoff?: { initialMs: number; maxMs: number };
}

interface ListResponse {
  apiVersion?: string;
  kind?: string;
  metadata: { resourceVersion?: string; continue?: string };
  items: KubernetesObject[];
}

interface WatchLine {
  type: EventType | "BOOKMARK" | "ERROR";
  object: KubernetesObject & { code?: number; reason?: string; message?: string };
}

export function stripManagedFields<T extends KubernetesObject>(obj: KubernetesObject): T {
  if (obj.metadata?.managedFields) delete obj.metadata.managedFields;
  return obj as T;
}

export function objectKey(obj: KubernetesObject): string {
  const ns = obj.metadata?.namespace;
  return ns ? `${ns}/${obj.metadata?.name ?? ""}` : (obj.metadata?.name ?? "");
}

export class Reflector<T extends KubernetesObject = KubernetesObject> {
  private readonly store = new Map<string, T>();
  private resourceVersion: string | undefined;
  private hasSynced = false;
  private stopped = false;
  private controller: AbortController | undefined;
  private loop: Promise<void> | undefined;
  private syncWaiters: (() => void)[] = [];
  private lastList = 0;
  private readonly opts: Required<
    Pick<ReflectorOptions<T>, "pageSize" | "resyncMs" | "watchdogMs" | "backoff">
  > &
    ReflectorOptions<T>;

  constructor(
    readonly rest: RestClient,
    readonly resource: ResourceRef,
    options: ReflectorOptions<T> = {},
  ) {
    this.opts = {
      pageSize: 500,
      resyncMs: 10 * 60_000,
      watchdogMs: 2 * 60_000,
      backoff: { initialMs: 200, maxMs: 30_000 },
      ...options,
    };
  }

  get synced(): boolean {
    return this.hasSynced;
  }

  get size(): number {
    return this.store.size;
  }

  get(namespace: string | undefined, name: string): T | undefined {
    return this.store.get(namespace ? `${namespace}/${name}` : name);
  }

  /** Every cached object (a fresh array). */
  list(): T[] {
    return [...this.store.values()];
  }

  values(): IterableIterator<T> {
    return this.store.values();
  }

  start(): this {
    if (!this.loop) this.loop = this.run();
    return this;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.controller?.abort();
    await this.loop;
  }

  /** Resolves once the first list has been applied, or rejects after `timeoutMs`. */
  waitForSync(timeoutMs = 30_000): Promise<void> {
    if (this.hasSynced) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${this.describe()} did not sync within ${timeoutMs / 1000}s`)),
        timeoutMs,
      );
      this.syncWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  describe(): string {
    return `${this.rest.cluster}/${this.resource.plural}${this.opts.labelSelector ? `{${this.opts.labelSelector}}` : ""}`;
  }

  private transform(obj: KubernetesObject): T {
    return this.opts.transform ? this.opts.transform(obj) : stripManagedFields<T>(obj);
  }

  private async run(): Promise<void> {
    let failures = 0;
    while (!this.stopped) {
      try {
        const resyncDue = Date.now() - this.lastList > this.opts.resyncMs * (1 + Math.random() * 0.2);
        if (this.resourceVersion === undefined || resyncDue) {
          if (this.resourceVersion !== undefined)
            this.opts.onLifecycle?.({ kind: "relist", reason: "resync" });
          await this.relist();
        }
        await this.watch();
        failures = 0;
      } catch (err) {
        if (this.stopped) break;
        if (err instanceof ApiError && err.code === 410) {
          this.resourceVersion = undefined;
          this.opts.onLifecycle?.({ kind: "relist", reason: "gone" });
          continue;
        }
        this.opts.onLifecycle?.({ kind: "watch-error", error: err });
        failures++;
        const base = Math.min(
          this.opts.backoff.maxMs,
          this.opts.backoff.initialMs * 2 ** Math.min(failures - 1, 10),
        );
        await this.sleep(base / 2 + Math.random() * (base / 2));
      }
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      timer.unref?.();
    });
  }

  private query(): Record<string, string | number | undefined> {
    return { labelSelector: this.opts.labelSelector, fieldSelector: this.opts.fieldSelector };
  }

  private async relist(): Promise<void> {
    const path = resourcePath(this.resource, this.opts.namespace);
    const items: KubernetesObject[] = [];
    let cont: string | undefined;
    let rv: string | undefined;
    do {
      const page = await this.rest.request<ListResponse>("GET", path, {
        query: { ...this.query(), limit: this.opts.pageSize, continue: cont },
      });
      // Items of a list carry no apiVersion/kind; watch events do. Make cached objects uniform.
      const kind = page.kind?.replace(/List$/, "");
      for (const item of page.items) {
        item.apiVersion ??= page.apiVersion;
        item.kind ??= kind;
      }
      items.push(...page.items);
      cont = page.metadata.continue || undefined;
      rv = page.metadata.resourceVersion;
    } while (cont);
    this.replace(items);
    this.resourceVersion = rv;
    this.lastList = Date.now();
    this.opts.onLifecycle?.({ kind: "listed", items: items.length });
    if (!this.hasSynced) {
      this.hasSynced = true;
      for (const w of this.syncWaiters.splice(0)) w();
    }
  }

  /** Applies a full list as a diff against the cache, emitting what changed. */
  private replace(raw: KubernetesObject[]): void {
    const seen = new Set<string>();
    for (const r of raw) {
      const obj = this.transform(r);
      const key = objectKey(obj);
      seen.add(key);
      const old = this.store.get(key);
      this.store.set(key, obj);
      if (!old) this.emit({ type: "ADDED", object: obj });
      else if (old.metadata?.resourceVersion !== obj.metadata?.resourceVersion)
        this.emit({ type: "MODIFIED", object: obj, old });
    }
    for (const [key, old] of [...this.store]) {
      if (!seen.has(key)) {
        this.store.delete(key);
        this.emit({ type: "DELETED", object: old, old });
      }
    }
  }

  private emit(event: ReflectorEvent<T>): void {
    try {
      this.opts.onEvent?.(event);
    } catch (err) {
      this.opts.onLifecycle?.({ kind: "watch-error", error: err });
    }
  }

  private async watch(): Promise<void> {
    const controller = new AbortController();
    this.controller = controller;
    let lastSeen = Date.now();
    let watchdogFired = false;
    const watchdog = setInterval(
      () => {
        if (Date.now() - lastSeen > this.opts.watchdogMs) {
          watchdogFired = true;
          controller.abort();
        }
      },
      Math.min(5000, this.opts.watchdogMs / 2),
    );
    watchdog.unref?.();
    let gone = false;
    try {
      await this.rest.stream(
        resourcePath(this.resource, this.opts.namespace),
        {
          ...this.query(),
          watch: 1,
          allowWatchBookmarks: true,
          resourceVersion: this.resourceVersion,
          // Randomised so that many reflectors do not all reconnect at once.
          timeoutSeconds: 240 + Math.floor(Math.random() * 120),
        },
        (line) => {
          lastSeen = Date.now();
          let ev: WatchLine;
          try {
            ev = JSON.parse(line) as WatchLine;
          } catch {
            return;
          }
          if (ev.type === "ERROR") {
            if (ev.object.code === 410) gone = true;
            controller.abort();
            return;
          }
          const rv = ev.object.metadata?.resourceVersion;
          if (ev.type === "BOOKMARK") {
            if (rv) this.resourceVersion = rv;
            return;
          }
          this.apply(ev.type, this.transform(ev.object));
          if (rv) this.resourceVersion = rv;
        },
        controller.signal,
      );
    } catch (err) {
      if (gone) throw new ApiError(410, "Expired", "watch expired");
      if (watchdogFired) {
        this.opts.onLifecycle?.({ kind: "relist", reason: "watchdog" });
        return;
      }
      if (this.stopped) return;
      throw err;
    } finally {
      clearInterval(watchdog);
    }
    if (gone) throw new ApiError(410, "Expired", "watch expired");
  }

  private apply(type: EventType, obj: T): void {
    const key = objectKey(obj);
    const old = this.store.get(key);
    if (type === "DELETED") {
      this.store.delete(key);
      this.emit({ type, object: obj, old });
      return;
    }
    this.store.set(key, obj);
    this.emit({ type: old ? "MODIFIED" : "ADDED", object: obj, old });
  }
}
