#!/usr/bin/env node
// Runs the CLI from source (through tsx) in a checkout, or from dist/ in a packaged install.
import { existsSync } from "node:fs";
import { fileURLToPath, pathToFileURL } from "node:url";

const source = fileURLToPath(new URL("../src/cli/main.ts", import.meta.url));
let entry;
if (existsSync(source)) {
  const { register } = await import("tsx/esm/api");
  register();
  entry = pathToFileURL(source).href;
} else {
  entry = new URL("../dist/cli/main.js", import.meta.url).href;
}
const { main } = await import(entry);
await main(process.argv);
