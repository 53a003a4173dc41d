/**
 * Detached processes of the local clusterset. Each runs in its own session with its output in a
 * log file, and is recorded in a pid file with its command line so that `down` never signals an
 * unrelated process that later reused the pid.
 */
import { spawn } from "node:child_process";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

export interface ProcessRecord {
  pid: number;
  /** argv[0] as started: checked against /proc/<pid>/cmdline before any signal. */
  executable: string;
  startedAt: string;
}

export interface StartOptions {
  executable: string;
  args: string[];
  logFile: string;
  pidFile: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** The program the process ends up running, when `executable` execs another (`ip netns exec`). */
  recordAs?: string;
}

export function startDetached(opts: StartOptions): ProcessRecord {
  mkdirSync(path.dirname(opts.logFile), { recursive: true });
  mkdirSync(path.dirname(opts.pidFile), { recursive: true });
  const log = openSync(opts.logFile, "a");
  try {
    const child = spawn(opts.executable, opts.args, {
      detached: true,
      stdio: ["ignore", log, log],
      env: opts.env ?? process.env,
      cwd: opts.cwd,
    });
    if (child.pid === undefined) throw new Error(`could not start ${opts.executable}`);
    child.unref();
    const record: ProcessRecord = {
      pid: child.pid,
      executable: opts.recordAs ?? opts.executable,
      startedAt: new Date().toISOString(),
    };
    writeFileSync(opts.pidFile, JSON.stringify(record) + "\n");
    return record;
  } finally {
    closeSync(log);
  }
}

export function readProcessRecord(pidFile: string): ProcessRecord | undefined {
  if (!existsSync(pidFile)) return undefined;
  try {
    return JSON.parse(readFileSync(pidFile, "utf8")) as ProcessRecord;
  } catch {
    return undefined;
  }
}

/** True when the recorded process is alive and is still the program that was started. */
export function isAlive(record: ProcessRecord | undefined): boolean {
  if (!record) return false;
  try {
    process.kill(record.pid, 0);
  } catch {
    return false;
  }
  try {
    const cmdline = readFileSync(`/proc/${record.pid}/cmdline`, "utf8");
    const stat = readFileSync(`/proc/${record.pid}/stat`, "utf8");
    // A zombie has exited; it only waits for its parent to reap it.
    if (/^\d+ \(.*\) Z /.test(stat)) return false;
    // Empty while the process is in execve (e.g. `ip netns exec` becoming its command).
    if (cmdline === "") return true;
    return cmdline
      .split("\0")
      .some((arg) => arg === record.executable || arg.endsWith(`/${path.basename(record.executable)}`));
  } catch {
    return false;
  }
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. */
export async function stopProcess(record: ProcessRecord | undefined, graceMs = 5000): Promise<boolean> {
  if (!isAlive(record) || !record) return false;
  signal(record.pid, "SIGTERM");
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline) {
    if (!isAlive(record)) return true;
    await sleep(50);
  }
  signal(record.pid, "SIGKILL");
  while (isAlive(record)) await sleep(20);
  return true;
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

export function removeRecord(pidFile: string): void {
  rmSync(pidFile, { force: true });
}
