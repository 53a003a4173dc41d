/**
 * The command line of bench/gateway.ts, checked before anything starts: a run takes minutes and
 * stages a clusterset, so a mistyped flag must fail at once and name itself, not turn into NaN
 * rounds or an empty table at the end.
 */
import { parseArgs } from "node:util";

export const PHASE_NAMES = ["throughput", "download", "connections", "latency", "memory"] as const;
export type Phase = (typeof PHASE_NAMES)[number];

export interface GatewayBenchOptions {
  on: "clusterset" | "loopback";
  seconds: number;
  rounds: number;
  warmupRounds: number;
  idle: number;
  only?: "meridian" | "haproxy";
  phases: Set<Phase>;
  withNodeRelay: boolean;
  /** Also the relay pair multiplexing every stream over this many mTLS connections (0: not run). */
  muxRelayConnections: number;
  /** Meridian's gateways multiplex streams over this many connections per peer (0: not; absent: their default). */
  multiplex?: number;
  profile?: string;
  haproxyThreads?: number;
  /** Replaces the gateways' V8 flags (loopback only). */
  gatewayNodeFlags?: string[];
  /** The measuring half of a clusterset run: the staged topology's file. */
  inside?: string;
}

/** A number flag that must be a whole number of at least `min`. */
export function wholeNumber(flag: string, text: string, min: number): number {
  const n = Number(text);
  if (text.trim() === "" || !Number.isInteger(n) || n < min)
    throw new Error(`--${flag} takes a whole number of at least ${min}, not "${text}"`);
  return n;
}

const FLAGS = {
  seconds: { type: "string", default: "3" },
  rounds: { type: "string", default: "5" },
  "warmup-rounds": { type: "string", default: "1" },
  "with-node-relay": { type: "boolean", default: false },
  "with-mux-relay": { type: "string" },
  multiplex: { type: "string" },
  idle: { type: "string", default: "5000" },
  only: { type: "string" },
  phases: { type: "string" },
  profile: { type: "string" },
  "haproxy-threads": { type: "string" },
  "gateway-node-flags": { type: "string" },
  on: { type: "string", default: "clusterset" },
  inside: { type: "string" },
} as const;
type Flags = ReturnType<typeof parseArgs<{ options: typeof FLAGS }>>["values"];

export function parseGatewayBenchArgs(args: string[]): GatewayBenchOptions {
  const { values } = parseArgs({ args, options: FLAGS });
  const seconds = Number(values.seconds);
  if (!(seconds > 0)) throw new Error(`--seconds takes a number above 0, not "${values.seconds}"`);
  return {
    ...modeOf(values),
    seconds,
    rounds: wholeNumber("rounds", values.rounds, 1),
    warmupRounds: wholeNumber("warmup-rounds", values["warmup-rounds"], 0),
    idle: wholeNumber("idle", values.idle, 1),
    phases: phasesOf(values),
    withNodeRelay: values["with-node-relay"],
    ...(values.multiplex !== undefined ? { multiplex: wholeNumber("multiplex", values.multiplex, 0) } : {}),
    muxRelayConnections:
      values["with-mux-relay"] === undefined ? 0 : wholeNumber("with-mux-relay", values["with-mux-relay"], 1),
    ...optionalSettings(values),
  };
}

/** Where the run happens and which systems it measures. */
function modeOf(values: Flags): Pick<GatewayBenchOptions, "on" | "only"> {
  const { on, only } = values;
  if (on !== "clusterset" && on !== "loopback")
    throw new Error(`--on takes clusterset or loopback, not "${on}"`);
  if (on === "clusterset" && (values.profile !== undefined || values["gateway-node-flags"] !== undefined))
    throw new Error(
      "--profile and --gateway-node-flags change how the bench starts its own gateways: use them with --on loopback",
    );
  if (only !== undefined && only !== "meridian" && only !== "haproxy")
    throw new Error(`--only takes meridian or haproxy, not "${only}"`);
  return { on, ...(only !== undefined ? { only } : {}) };
}

function phasesOf(values: Flags): Set<Phase> {
  if (values.phases !== undefined && values.only === undefined)
    throw new Error("--phases goes with --only: a full run measures every phase");
  const phases = new Set<Phase>();
  for (const p of (values.phases ?? PHASE_NAMES.join(",")).split(",")) {
    if (!(PHASE_NAMES as readonly string[]).includes(p))
      throw new Error(`--phases takes ${PHASE_NAMES.join(", ")}; "${p}" is none of them`);
    phases.add(p as Phase);
  }
  return phases;
}

function optionalSettings(
  values: Flags,
): Pick<GatewayBenchOptions, "profile" | "haproxyThreads" | "gatewayNodeFlags" | "inside"> {
  const flags = values["gateway-node-flags"];
  const threads = values["haproxy-threads"];
  return {
    ...(values.profile !== undefined ? { profile: values.profile } : {}),
    ...(threads !== undefined ? { haproxyThreads: wholeNumber("haproxy-threads", threads, 1) } : {}),
    ...(flags !== undefined ? { gatewayNodeFlags: flags.split(/\s+/).filter((f) => f !== "") } : {}),
    ...(values.inside !== undefined ? { inside: values.inside } : {}),
  };
}
