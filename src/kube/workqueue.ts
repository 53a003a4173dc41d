/**
 * A keyed, deduplicating work queue with bounded concurrency and rate-limited retries, in the
 * manner of client-go's workqueue. A key added while queued is not queued twice; a key added while
 * being processed is processed once more afterwards (never concurrently with itself). A failed key
 * is retried after an exponential, jittered delay.
 */
export interface WorkQueueOptions {
  concurrency?: number;
  backoff?: { initialMs: number; maxMs: number };
  onResult?: (key: string, result: "success" | "error", seconds: number, error?: unknown) => void;
}

export class WorkQueue {
  private readonly queue: string[] = [];
  private readonly queued = new Set<string>();
  private readonly processing = new Set<string>();
  private readonly dirty = new Set<string>();
  private readonly failures = new Map<string, number>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private running = 0;
  private stopped = false;
  private idleWaiters: (() => void)[] = [];
  private readonly concurrency: number;
  private readonly backoff: { initialMs: number; maxMs: number };

  constructor(
    private readonly worker: (key: string) => Promise<void>,
    private readonly options: WorkQueueOptions = {},
  ) {
    this.concurrency = options.concurrency ?? 4;
    this.backoff = options.backoff ?? { initialMs: 100, maxMs: 30_000 };
  }

  get depth(): number {
    return this.queue.length;
  }

  add(key: string): void {
    if (this.stopped) return;
    const timer = this.timers.get(key);
    if (timer) {
      clearTimeout(timer);
      this.timers.delete(key);
    }
    if (this.processing.has(key)) {
      this.dirty.add(key);
      return;
    }
    if (this.queued.has(key)) return;
    this.queued.add(key);
    this.queue.push(key);
    this.schedulePump();
  }

  private pumpScheduled = false;

  /** Deferred to a microtask so that a burst of adds in one tick coalesces before work starts. */
  private schedulePump(): void {
    if (this.pumpScheduled) return;
    this.pumpScheduled = true;
    queueMicrotask(() => {
      this.pumpScheduled = false;
      this.pump();
    });
  }

  /** Adds `key` after `ms`, unless it is added sooner. */
  addAfter(key: string, ms: number): void {
    if (this.stopped || this.timers.has(key)) return;
    const timer = setTimeout(() => {
      this.timers.delete(key);
      this.add(key);
    }, ms);
    this.timers.set(key, timer);
  }

  /** Resolves when nothing is queued, running or waiting for a retry. */
  idle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    this.queue.length = 0;
    this.queued.clear();
  }

  private isIdle(): boolean {
    return this.queue.length === 0 && this.running === 0 && this.timers.size === 0;
  }

  private pump(): void {
    while (this.running < this.concurrency && this.queue.length > 0) {
      const key = this.queue.shift()!;
      this.queued.delete(key);
      this.processing.add(key);
      this.running++;
      void this.process(key);
    }
    if (this.isIdle()) for (const w of this.idleWaiters.splice(0)) w();
  }

  private async process(key: string): Promise<void> {
    const started = performance.now();
    try {
      await this.worker(key);
      this.failures.delete(key);
      this.options.onResult?.(key, "success", (performance.now() - started) / 1000);
    } catch (err) {
      const n = (this.failures.get(key) ?? 0) + 1;
      this.failures.set(key, n);
      this.options.onResult?.(key, "error", (performance.now() - started) / 1000, err);
      const delay = Math.min(this.backoff.maxMs, this.backoff.initialMs * 2 ** Math.min(n - 1, 16));
      if (!this.dirty.has(key)) this.addAfter(key, delay / 2 + Math.random() * (delay / 2));
    } finally {
      this.processing.delete(key);
      this.running--;
      if (this.dirty.delete(key)) this.add(key);
      this.pump();
    }
  }
}
