/**
 * Integration-test helpers. `test/run-integration.ts` starts one clusterset for the whole run and
 * passes its state dir in MERIDIAN_TEST_STATE_DIR; a test file run on its own starts a private one.
 * Tests isolate themselves by namespace.
 */
import { spawn, type SpawnOptions } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { randomBytes } from "node:crypto";
import { after } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { ClusterClient } from "../src/kube/client.js";
import { down, up } from "../src/local/clusterset.js";
import { readClusterset, StatePaths, type ClustersetRecord } from "../src/local/state.js";
import { REPO_ROOT } from "../src/local/binaries.js";

export const MERIDIAN_BIN = path.join(REPO_ROOT, "bin", "meridian.js");

export interface TestClusterset {
  stateDir: string;
  paths: StatePaths;
  record: ClustersetRecord;
  members: string[];
  client(cluster: string): ClusterClient;
}

let shared: Promise<TestClusterset> | undefined;

function describeClusterset(stateDir: string): TestClusterset {
  const paths = new StatePaths(stateDir);
  const record = readClusterset(paths);
  if (!record) throw new Error(`no clusterset in ${stateDir}`);
  const clients = new Map<string, ClusterClient>();
  return {
    stateDir,
    paths,
    record,
    members: record.clusters.filter((c) => c.role === "member").map((c) => c.name),
    client(cluster) {
      let c = clients.get(cluster);
      if (!c) {
        c = ClusterClient.fromFile(paths.kubeconfig, cluster);
        clients.set(cluster, c);
      }
      return c;
    },
  };
}

/** The clusterset shared by this test run. */
export function clusterset(): Promise<TestClusterset> {
  shared ??= (async () => {
    const fromRunner = process.env["MERIDIAN_TEST_STATE_DIR"];
    if (fromRunner) return describeClusterset(fromRunner);
    const dir = mkdtempSync(path.join(os.tmpdir(), "meridian-test-"));
    after(async () => {
      await down(dir, true);
    });
    await withLogsOnFailure([dir], () => up({ stateDir: dir, members: 3 }));
    return describeClusterset(dir);
  })();
  return shared;
}

/** A fresh, private clusterset for tests that stop or break one; torn down after the file. */
export async function privateClusterset(members = 1, components?: string[]): Promise<TestClusterset> {
  const dir = mkdtempSync(path.join(os.tmpdir(), "meridian-private-"));
  after(async () => {
    // MERIDIAN_TEST_KEEP=1 keeps the state dir (logs included) for a post-mortem.
    await down(dir, !process.env["MERIDIAN_TEST_KEEP"]);
  });
  await withLogsOnFailure([dir], () => up({ stateDir: dir, members, components }));
  return describeClusterset(dir);
}

/**
 * Runs `body`; if it throws, first prints the last lines of every component log of the clustersets
 * in `stateDirs`, since the caller's `down` removes them and a flaky start leaves nothing else.
 */
export async function withLogsOnFailure<T>(stateDirs: string[], body: () => Promise<T>): Promise<T> {
  try {
    return await body();
  } catch (err) {
    for (const dir of stateDirs) {
      const logs = new StatePaths(dir).logs;
      if (!existsSync(logs)) continue;
      for (const file of readdirSync(logs).sort()) {
        const tail = readFileSync(path.join(logs, file), "utf8").split("\n").slice(-30).join("\n");
        process.stderr.write(`── ${dir} ${file} (last 30 lines) ──\n${tail}\n`);
      }
    }
    throw err;
  }
}

export function uniqueName(prefix: string): string {
  return `${prefix}-${randomBytes(3).toString("hex")}`;
}

/** Creates a namespace in each of `clusters` and deletes it after the test file. */
export async function testNamespace(cs: TestClusterset, clusters: string[], prefix = "t"): Promise<string> {
  const name = uniqueName(prefix);
  for (const c of clusters) await cs.client(c).core.createNamespace({ body: { metadata: { name } } });
  after(async () => {
    for (const c of clusters) {
      // Best effort: a private clusterset may already be gone when this runs.
      await cs
        .client(c)
        .core.deleteNamespace({ name })
        .catch(() => undefined);
    }
  });
  return name;
}

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion, capturing its output. */
export function runCommand(
  argv: string[],
  opts: SpawnOptions & { timeoutMs?: number } = {},
): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { ...opts, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 60_000);
    child.once("error", reject);
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr });
    });
  });
}

/** Runs the `meridian` CLI against a state dir. */
export function meridian(
  args: string[],
  opts: SpawnOptions & { stateDir?: string; timeoutMs?: number } = {},
): Promise<CommandResult> {
  const env = { ...process.env, ...opts.env };
  if (opts.stateDir) env["MERIDIAN_STATE_DIR"] = opts.stateDir;
  return runCommand([process.execPath, MERIDIAN_BIN, ...args], { ...opts, env });
}

/** Polls `check` until it returns a value (not undefined) or throws after `timeoutMs`. */
export async function eventually<T>(
  what: string,
  check: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 15_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      const cause = lastError instanceof Error ? `: ${lastError.message}` : "";
      throw new Error(`timed out after ${timeoutMs / 1000}s waiting for ${what}${cause}`);
    }
    await sleep(100);
  }
}

/** A Service `name` in `cluster`, backed by one `meridian whereami` pod listening on `port`. */
export async function runWhereami(
  cs: TestClusterset,
  cluster: string,
  ns: string,
  name: string,
  port: number,
  /** The Service offers whereami's UDP answers too, as port "datagrams" (the same number). */
  withUdp = false,
): Promise<void> {
  const ports = [{ name: "http", port }, ...(withUdp ? [{ name: "datagrams", port, protocol: "UDP" }] : [])];
  await cs.client(cluster).core.createNamespacedService({
    namespace: ns,
    body: { metadata: { name }, spec: { selector: { app: name }, ports } },
  });
  const run = await meridian(
    [
      "run",
      cluster,
      "-n",
      ns,
      "--labels",
      `app=${name}`,
      "--name",
      `${name}-${cluster}`,
      "--ready-port",
      String(port),
      "--detach",
      "--",
      process.execPath,
      MERIDIAN_BIN,
      "whereami",
      "--port",
      String(port),
    ],
    { stateDir: cs.stateDir },
  );
  if (run.code !== 0) throw new Error(`meridian run ${name} in ${cluster} failed: ${run.stderr}`);
}
