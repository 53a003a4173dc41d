/**
 * Runs the integration tests against one local clusterset: starts it, runs every test/*.test.ts
 * with its state dir in MERIDIAN_TEST_STATE_DIR (one file at a time: some stop components), and
 * tears it down afterwards, on failure and on interrupt too.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { down, up } from "../src/local/clusterset.js";
import { withLogsOnFailure } from "./harness.js";

const testDir = path.dirname(new URL(import.meta.url).pathname);
const files = readdirSync(testDir)
  .filter((f) => f.endsWith(".test.ts"))
  .sort()
  .map((f) => path.join(testDir, f));
const only = process.argv.slice(2);
const selected = only.length > 0 ? files.filter((f) => only.some((o) => f.includes(o))) : files;

const stateDir = mkdtempSync(path.join(os.tmpdir(), "meridian-it-"));
let tornDown = false;
async function teardown(): Promise<void> {
  if (tornDown) return;
  tornDown = true;
  await down(stateDir, true);
}
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.once(sig, () => {
    void teardown().finally(() => process.exit(130));
  });
}

let code: number;
try {
  const result = await withLogsOnFailure([stateDir], () =>
    up({ stateDir, members: 3, log: (l) => process.stderr.write(`[up] ${l}\n`) }),
  );
  process.stderr.write(`[up] clusterset ready in ${result.seconds.toFixed(1)}s at ${stateDir}\n`);
  code = await new Promise<number>((resolve) => {
    const child = spawn(
      process.execPath,
      ["--import", "tsx", "--test", "--test-concurrency=1", "--test-reporter=spec", ...selected],
      { stdio: "inherit", env: { ...process.env, MERIDIAN_TEST_STATE_DIR: stateDir } },
    );
    child.once("exit", (c) => resolve(c ?? 1));
  });
} finally {
  await teardown();
}
process.exit(code);
