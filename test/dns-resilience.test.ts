/**
 * The member DNS keeps answering without the hub, and a restarted DNS answers SERVFAIL (never a
 * false NXDOMAIN) until its caches are synced. Uses a private clusterset: it stops components.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { after, describe, test } from "node:test";
import { serviceImport } from "../src/dns/objects.js";
import { API_RELAY_PROCESS, apiSocketPath, memberKubeconfigPath } from "../src/local/apirelay.js";
import { inNamespace } from "../src/local/network.js";
import { readProcessRecord, stopProcess } from "../src/local/processes.js";
import { eventually, MERIDIAN_BIN, meridian, privateClusterset } from "./harness.js";

const ZONE = "clusterset.local";

describe("member DNS resilience", async () => {
  // Registered before the clusterset's own teardown: `after` hooks run in registration order.
  const started: ChildProcess[] = [];
  after(() => {
    for (const child of started) child.kill("SIGTERM");
  });
  const cs = await privateClusterset(1);
  const west = cs.members[0]!;
  const network = cs.record.clusters.find((c) => c.name === west)!.network!;
  // Not testNamespace(): its cleanup would run after the private clusterset is already down.
  const ns = "resilience";
  await cs.client(west).core.createNamespace({ body: { metadata: { name: ns } } });

  /** `dig +short`-style status and answers from the member's resolver. */
  const ask = async (name: string): Promise<{ status: string; answers: string[] }> => {
    const r = await meridian(["exec", west, "--", "dig", "+time=2", "+tries=1", name, "A"], {
      stateDir: cs.stateDir,
      timeoutMs: 20_000,
    });
    const answers = (/;; ANSWER SECTION:\n([\s\S]*?)\n\n/.exec(r.stdout)?.[1] ?? "")
      .split("\n")
      .filter(Boolean)
      .map((l) => l.split(/\s+/).pop()!);
    return { status: /status: (\w+)/.exec(r.stdout)?.[1] ?? "NO-ANSWER", answers };
  };
  const stop = (name: string) => stopProcess(readProcessRecord(cs.paths.pidFile(name)));
  /** Starts a meridian subcommand inside the member's network, owned (and stopped) by this test. */
  const startInMember = (args: string[], inHost = false): ChildProcess => {
    const argv = [process.execPath, MERIDIAN_BIN, ...args];
    const [exe, ...rest] = inHost ? argv : inNamespace(network.nodeNamespace, argv);
    const child = spawn(exe!, rest, { stdio: "ignore" });
    child.unref();
    started.push(child);
    return child;
  };

  test("with the hub's API server stopped, the member still answers and follows changes", async () => {
    await cs
      .client(west)
      .apply(serviceImport(ns, "before", { ips: ["10.96.20.1"], ports: [{ port: 80 }] }), "dns-test");
    await eventually("before to resolve", async () =>
      (await ask(`before.${ns}.svc.${ZONE}`)).answers[0] === "10.96.20.1" ? true : undefined,
    );
    assert.ok(await stop("hub-kube-apiserver"), "the hub's API server was running");
    assert.deepEqual((await ask(`before.${ns}.svc.${ZONE}`)).answers, ["10.96.20.1"]);
    await cs
      .client(west)
      .apply(serviceImport(ns, "after", { ips: ["10.96.20.2"], ports: [{ port: 80 }] }), "dns-test");
    await eventually("after to resolve with the hub down", async () =>
      (await ask(`after.${ns}.svc.${ZONE}`)).answers[0] === "10.96.20.2" ? true : undefined,
    );
  });

  test("a restarted DNS answers SERVFAIL until its caches sync, then answers", async () => {
    // Cut the DNS off from its API server, then restart it: it cannot list anything.
    assert.ok(await stop(`${west}-dns`));
    assert.ok(await stop(API_RELAY_PROCESS));
    startInMember([
      "dns",
      "--kubeconfig",
      memberKubeconfigPath(cs.paths, west),
      "--api-socket",
      apiSocketPath(cs.paths, west),
      "--listen",
      `${network.nodeAddress}:53`,
    ]);
    // A cold `meridian` start takes seconds on a loaded 2-core machine: wait generously.
    const unsynced = await eventually(
      "the restarted DNS to answer",
      async () => {
        const r = await ask(`before.${ns}.svc.${ZONE}`);
        return r.status === "NO-ANSWER" ? undefined : r;
      },
      60_000,
    );
    assert.equal(unsynced.status, "SERVFAIL", "an existing name is SERVFAIL, not NXDOMAIN, before sync");
    assert.equal((await ask(`missing.${ns}.svc.${ZONE}`)).status, "SERVFAIL");
    // Give it its API server back: it lists, syncs and answers.
    const apiserverPort = cs.record.clusters.find((c) => c.name === west)!.apiserverPort;
    startInMember(
      [
        "api-relay",
        "--from",
        `unix:${apiSocketPath(cs.paths, west)}`,
        "--to",
        `tcp:127.0.0.1:${apiserverPort}`,
      ],
      true,
    );
    // Its three caches list one after another: a name in the first may answer while the others
    // still list, but a missing name is NXDOMAIN only once all three have.
    await eventually(
      "the DNS to sync",
      async () => ((await ask(`missing.${ns}.svc.${ZONE}`)).status === "NXDOMAIN" ? true : undefined),
      30_000,
    );
    const synced = await ask(`before.${ns}.svc.${ZONE}`);
    assert.equal(synced.status, "NOERROR");
    assert.deepEqual(synced.answers, ["10.96.20.1"]);
  });
});
