/**
 * Runs the gateway process tests (test/gateway-processes.ts) inside a private network namespace.
 * They open about 20,000 connections on loopback; in the host's namespace the TIME_WAIT sockets
 * they leave behind would hold the whole ephemeral port range for a minute and starve every other
 * test (and the shared clusterset's controller) of new connections.
 */
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import path from "node:path";
import { after, test } from "node:test";

const namespace = `mrd-test-gw-${randomBytes(3).toString("hex")}`;
after(() => {
  execFileSync("ip", ["netns", "delete", namespace], { stdio: "ignore" });
});

test("gateway processes, in a private network namespace", { timeout: 15 * 60_000 }, async () => {
  execFileSync("ip", ["netns", "add", namespace]);
  execFileSync("ip", ["-n", namespace, "link", "set", "lo", "up"]);
  // The namespace's own port range (the host's is untouched): room for the stress test's
  // TIME_WAIT sockets and the tests after it.
  execFileSync("ip", [
    "netns",
    "exec",
    namespace,
    "sysctl",
    "-qw",
    "net.ipv4.ip_local_port_range=1024 65535",
  ]);
  const file = path.join(path.dirname(new URL(import.meta.url).pathname), "gateway-processes.ts");
  // Without NODE_TEST_CONTEXT the inner runner does not mistake itself for a nested run (which
  // would skip every file and still exit 0).
  const { NODE_TEST_CONTEXT: _ignored, ...env } = process.env;
  let output = "";
  const code = await new Promise<number | null>((resolve) => {
    const child = spawn(
      "ip",
      [
        "netns",
        "exec",
        namespace,
        process.execPath,
        "--import",
        "tsx",
        "--test",
        "--test-reporter=spec",
        file,
      ],
      { stdio: ["ignore", "pipe", "pipe"], env },
    );
    const forward = (d: Buffer): void => {
      output += d.toString();
      process.stdout.write(d);
    };
    child.stdout.on("data", forward);
    child.stderr.on("data", forward);
    child.once("exit", resolve);
  });
  const passed = Number(/ℹ pass (\d+)/.exec(output)?.[1] ?? 0);
  const failed = Number(/ℹ fail (\d+)/.exec(output)?.[1] ?? -1);
  assert.equal(code, 0, "the gateway process tests failed; their report is above");
  assert.equal(failed, 0);
  assert.ok(passed >= 4, `the gateway process tests ran: ${passed} passed`);
});
