/**
 * Counters and gauges for hot paths: values are summed per label set in a plain map and handed to
 * prom-client only when scraped. A labelled prom-client `inc()` validates and hashes its labels on
 * every call: that cost more than answering a DNS query, and in a gateway's connections phase
 * (loopback `--profile`) it was ~4% of the gateway's busy time, ~2% once tallied. Here a call
 * costs a string join and a map lookup, and a caller holding a `sum()` pays neither.
 */
import { Counter, Gauge, type Registry } from "prom-client";

type Labels<L extends string> = Record<L, string>;

/** A running sum: a caller that touches one label set often keeps it and adds to `value` directly. */
export interface TallySum {
  value: number;
}

interface Sum<L extends string> extends TallySum {
  labels: Labels<L>;
}

/** Sums per label set; the key is the values in `labelNames` order, so equal sets meet. */
class Sums<L extends string> {
  readonly byKey = new Map<string, Sum<L>>();

  constructor(private readonly labelNames: readonly L[]) {}

  entry(labels: Labels<L>): Sum<L> {
    let key = "";
    for (const name of this.labelNames) key += `${labels[name]}\u0000`;
    return this.keyed(key, this.copy, labels);
  }

  /** The sum under a caller's own key; `labelsOf(source)` runs only the first time the key is seen. */
  keyed<S>(key: string, labelsOf: (source: S) => Labels<L>, source: S): Sum<L> {
    let sum = this.byKey.get(key);
    if (!sum) {
      sum = { labels: labelsOf(source), value: 0 };
      this.byKey.set(key, sum);
    }
    return sum;
  }

  /** A copy: callers may reuse or change the object they passed. */
  private readonly copy = (labels: Labels<L>): Labels<L> => {
    const own = {} as Labels<L>;
    for (const name of this.labelNames) own[name] = labels[name];
    return own;
  };
}

interface TallyOptions<L extends string> {
  name: string;
  help: string;
  labelNames: readonly L[];
  registry: Registry;
}

/** Sums kept here, and the prom-client metric that shows them when scraped. */
abstract class Tallied<L extends string> {
  protected readonly sums: Sums<L>;

  constructor(o: TallyOptions<L>, kind: "counter" | "gauge") {
    const sums = (this.sums = new Sums(o.labelNames));
    const config = { name: o.name, help: o.help, labelNames: o.labelNames, registers: [o.registry] };
    // A gauge shows its level, a counter its total: prom-client has `set` only for the former.
    if (kind === "gauge")
      new Gauge<L>({
        ...config,
        collect() {
          this.reset();
          for (const { labels, value } of sums.byKey.values()) this.set(labels, value);
        },
      });
    else
      new Counter<L>({
        ...config,
        collect() {
          this.reset();
          for (const { labels, value } of sums.byKey.values()) this.inc(labels, value);
        },
      });
  }

  inc(labels: Labels<L>, value = 1): void {
    this.sums.entry(labels).value += value;
  }

  /** The sum for a label set, kept for good: hot paths resolve it once and add to it directly. */
  sum(labels: Labels<L>): TallySum {
    return this.sums.entry(labels);
  }
}

/** A counter with prom-client's `inc(labels, value)`, summed in a map until scraped. */
export class TalliedCounter<L extends string> extends Tallied<L> {
  constructor(o: TallyOptions<L>) {
    super(o, "counter");
  }

  /**
   * `inc` under the caller's own key for a label set (raw values it has at hand), so that the
   * labels are built, by `labelsOf(source)`, only the first time the key is seen. A counter takes
   * either this or `inc`, not both.
   */
  incKeyed<S>(key: string, labelsOf: (source: S) => Labels<L>, source: S, value = 1): void {
    this.sums.keyed(key, labelsOf, source).value += value;
  }
}

/** A gauge with prom-client's `inc`, `dec` and `set`, kept in a map until scraped. */
export class TalliedGauge<L extends string> extends Tallied<L> {
  constructor(o: TallyOptions<L>) {
    super(o, "gauge");
  }

  dec(labels: Labels<L>, value = 1): void {
    this.sums.entry(labels).value -= value;
  }

  set(labels: Labels<L>, value: number): void {
    this.sums.entry(labels).value = value;
  }
}
