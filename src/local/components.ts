/**
 * Meridian's own processes in a local clusterset (controller, per-member DNS, gateways) plug into
 * `up`, `down` and `status` through this registry, so each component lives in its own module.
 *
 * Every process a component starts is recorded as `pids/<name>.pid` (use `startComponentProcess`):
 * `down` stops all of them before the control planes, and `status` lists those named
 * `<cluster>-...` under their cluster.
 */
import { existsSync } from "node:fs";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { tail } from "./controlplane.js";
import type { Binaries } from "./binaries.js";
import { REPO_ROOT } from "./binaries.js";
import { startDetached, isAlive, readProcessRecord, type ProcessRecord } from "./processes.js";
import type { ClusterRecord, ClustersetRecord, StatePaths } from "./state.js";
import { inNamespace } from "./network.js";

export interface ComponentContext {
  paths: StatePaths;
  record: ClustersetRecord;
  bins: Binaries;
  log: (line: string) => void;
}

export interface LocalComponent {
  /** Short name, e.g. "dns". */
  name: string;
  /**
   * Brings the component up (or leaves it running) once every control plane answers and has its
   * CRDs. Called on every `up`, fresh or resumed: it must be idempotent.
   */
  ensure(ctx: ComponentContext): Promise<void>;
  /**
   * Optional: starts what needs only the control planes' addresses, not their readiness, while
   * they boot (e.g. a relay to them). `ensure` follows with the same context.
   */
  prepare?(ctx: ComponentContext): Promise<void>;
  /** Extra, component-specific facts for `meridian status -o json`, per cluster (optional). */
  describe?(
    ctx: Omit<ComponentContext, "bins" | "log">,
    cluster: ClusterRecord,
  ): Record<string, unknown> | undefined;
}

const registry: LocalComponent[] = [];

export function registerLocalComponent(component: LocalComponent): void {
  if (!registry.some((c) => c.name === component.name)) registry.push(component);
}

export function localComponents(): readonly LocalComponent[] {
  return registry;
}

/** argv that runs this checkout's `meridian` CLI. */
export function meridianCommand(...args: string[]): string[] {
  return meridianCommandWithNodeFlags([], ...args);
}

/** `meridianCommand` with flags for Node itself (before the script). */
export function meridianCommandWithNodeFlags(nodeFlags: readonly string[], ...args: string[]): string[] {
  return [process.execPath, ...nodeFlags, path.join(REPO_ROOT, "bin", "meridian.js"), ...args];
}

export interface ComponentProcess {
  /** Process name: `<cluster>-<component>` for per-cluster processes. */
  name: string;
  argv: string[];
  /** Run inside this network namespace (a member's node), or in the host's. */
  networkNamespace?: string;
  env?: NodeJS.ProcessEnv;
}

/** Starts the process unless its recorded one is alive; returns its record. */
export function startComponentProcess(ctx: ComponentContext, proc: ComponentProcess): ProcessRecord {
  const pidFile = ctx.paths.pidFile(proc.name);
  const existing = readProcessRecord(pidFile);
  if (existing && isAlive(existing)) return existing;
  const argv = proc.networkNamespace ? inNamespace(proc.networkNamespace, proc.argv) : proc.argv;
  const [exe, ...args] = argv;
  return startDetached({
    executable: exe!,
    args,
    logFile: ctx.paths.logFile(proc.name),
    pidFile,
    env: { ...process.env, ...proc.env, MERIDIAN_STATE_DIR: ctx.paths.dir },
    // `ip netns exec` replaces itself with the command: the pid is the command's.
    recordAs: proc.networkNamespace ? proc.argv[0] : undefined,
  });
}

/** Where a component process says it is ready (it creates the file; see `--ready-file`). */
export function readyFilePath(ctx: ComponentContext, processName: string): string {
  return path.join(ctx.paths.dir, "run", `${processName}.ready`);
}

/**
 * Waits for a process started with `--ready-file` to create it, failing early, with the log's
 * tail, if the process exits. `fallback` (optional, tried once a second) covers a process started
 * by an older version without the flag.
 */
export async function waitForReadyFile(
  ctx: ComponentContext,
  processName: string,
  proc: ProcessRecord,
  timeoutMs: number,
  fallback?: () => Promise<boolean>,
): Promise<void> {
  const readyFile = readyFilePath(ctx, processName);
  const logFile = ctx.paths.logFile(processName);
  const deadline = Date.now() + timeoutMs;
  let missing = 0;
  for (let attempt = 1; Date.now() < deadline; attempt++) {
    if (existsSync(readyFile)) return;
    if (fallback && attempt % 20 === 0 && (await fallback())) return;
    // Twice in a row, 50 ms apart: one look can fall between a process's exec calls.
    missing = isAlive(proc) ? 0 : missing + 1;
    if (missing >= 2) {
      throw new Error(
        `${processName} exited while starting; last lines of ${logFile}:\n${tail(logFile, 10)}`,
      );
    }
    await sleep(50);
  }
  throw new Error(`${processName} was not ready within ${timeoutMs / 1000}s; see ${logFile}`);
}
