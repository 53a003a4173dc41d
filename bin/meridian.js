#!/usr/bin/env node
// Runs the CLI from dist/ when it was built after the last change to src/ (start-up in about half
// a second), and otherwise from source through tsx, so a checkout never runs stale code.
import { existsSync, readdirSync, statSync } from "node:fs";
import { fileURLToPath, pathToFileURL } from "node:url";
import path from "node:path";

const root = fileURLToPath(new URL("..", import.meta.url));
const stamp = path.join(root, "dist", ".build-stamp");
const sourceDir = path.join(root, "src");

function newestSource(dir) {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const file = path.join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestSource(file) : statSync(file).mtimeMs);
  }
  return newest;
}

// Daemons (the controller) load a light entry point instead of the whole CLI.
const daemon = ["controller", "dns", "api-relay", "gateway"].includes(process.argv[2] ?? "");
const module = daemon ? "daemons" : "main";
let entry;
if (!existsSync(sourceDir) || (existsSync(stamp) && statSync(stamp).mtimeMs >= newestSource(sourceDir))) {
  entry = pathToFileURL(path.join(root, "dist", "cli", `${module}.js`)).href;
} else {
  const { register } = await import("tsx/esm/api");
  register();
  entry = pathToFileURL(path.join(sourceDir, "cli", `${module}.ts`)).href;
}
const loaded = await import(entry);
await (daemon ? loaded.runDaemon(process.argv) : loaded.main(process.argv));
