/**
 * Starting, breaking, resuming and stopping a clusterset. Uses its own clusterset (two members with
 * overlapping pod CIDRs), since these tests kill its components.
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { readProcessRecord } from "../src/local/processes.js";
import type { ClustersetStatus } from "../src/local/clusterset.js";
import { up } from "../src/local/clusterset.js";
import {
  eventually,
  meridian,
  MERIDIAN_BIN,
  runCommand,
  uniqueName,
  withLogsOnFailure,
  type TestClusterset,
} from "./harness.js";
import { ClusterClient } from "../src/kube/client.js";
import { readClusterset, StatePaths } from "../src/local/state.js";
import { down } from "../src/local/clusterset.js";

const dir = mkdtempSync(path.join(os.tmpdir(), "meridian-lifecycle-"));
after(async () => {
  await down(dir, true);
});
const started = await meridian(["up", "--members", "2", "--overlapping-pod-cidrs"], {
  stateDir: dir,
  timeoutMs: 120_000,
});
assert.equal(started.code, 0, started.stderr);
const paths = new StatePaths(dir);
const cs: TestClusterset = {
  stateDir: dir,
  paths,
  record: readClusterset(paths)!,
  members: ["west", "east"],
  client: (c) => ClusterClient.fromFile(paths.kubeconfig, c),
};

async function statusOf(): Promise<ClustersetStatus> {
  const res = await meridian(["status", "-o", "json"], { stateDir: dir });
  return JSON.parse(res.stdout) as ClustersetStatus;
}

describe("overlapping pod CIDRs", () => {
  it("give two members the same pod address, each answered by its own member", async () => {
    const s = await statusOf();
    assert.deepEqual(
      s.clusters.filter((c) => c.role === "member").map((c) => c.network!.podCIDR),
      ["10.244.0.0/24", "10.244.0.0/24"],
    );
    const ips: string[] = [];
    for (const member of ["west", "east"]) {
      const res = await meridian(
        [
          "run",
          member,
          "--detach",
          "--ready-port",
          "8080",
          "--name",
          `who-${member}`,
          "--",
          process.execPath,
          MERIDIAN_BIN,
          "whereami",
        ],
        { stateDir: dir },
      );
      assert.equal(res.code, 0, res.stderr);
      ips.push(/at (\S+) /.exec(res.stdout)![1]!);
    }
    assert.equal(ips[0], ips[1], "both members hand out the first pod address");
    for (const member of ["west", "east"]) {
      const res = await meridian(["exec", member, "--", "curl", "-s", "-m", "2", `http://${ips[0]}:8080/`], {
        stateDir: dir,
      });
      assert.equal(JSON.parse(res.stdout).cluster, member);
    }
  });
});

describe("a killed apiserver", () => {
  it("is reported as down, and 'up' on the existing state dir brings it back with its data", async () => {
    const client = cs.client("west");
    const name = uniqueName("keep");
    await client.core.createNamespacedConfigMap({
      namespace: "default",
      body: { metadata: { name }, data: { k: "v" } },
    });

    const rec = readProcessRecord(cs.paths.pidFile("west-kube-apiserver"))!;
    process.kill(rec.pid, "SIGKILL");
    await eventually("the kill to take effect", async () =>
      (await statusOf()).clusters.find((c) => c.name === "west")!.health === "Down" ? true : undefined,
    );
    const res = await meridian(["status"], { stateDir: dir });
    assert.equal(res.code, 3, "status exits non-zero while a cluster is not Ready");
    assert.match(res.stdout, /^west\s+member\s+Down/m);

    const again = await meridian(["up"], { stateDir: dir, timeoutMs: 120_000 });
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /Resumed the clusterset/);
    assert.ok((await statusOf()).clusters.every((c) => c.health === "Ready"));
    const cm = await cs.client("west").core.readNamespacedConfigMap({ name, namespace: "default" });
    assert.equal(cm.data?.["k"], "v");
  });

  it("'up' on a running clusterset says it is already running and changes nothing", async () => {
    const before = readProcessRecord(cs.paths.pidFile("hub-kube-apiserver"))!.pid;
    const res = await meridian(["up"], { stateDir: dir });
    assert.equal(res.code, 1);
    assert.match(
      res.stderr,
      /is already running \(hub, west, east\); see 'meridian status', or stop it with 'meridian down'/,
    );
    assert.equal(readProcessRecord(cs.paths.pidFile("hub-kube-apiserver"))!.pid, before);
  });

  it("'up' refuses to change the member count of an existing clusterset", async () => {
    const res = await meridian(["up", "--members", "5"], { stateDir: dir });
    assert.equal(res.code, 1);
    assert.match(res.stderr, /holds a clusterset with 2 members; --members 5 cannot change it/);
  });

  it("'up' refuses while another 'up' holds the state dir", async () => {
    const lock = new StatePaths(dir).lockFile;
    writeFileSync(lock, String(process.pid));
    try {
      const res = await meridian(["up"], { stateDir: dir });
      assert.equal(res.code, 1);
      assert.match(res.stderr, new RegExp(`another 'meridian up' \\(pid ${process.pid}\\) is working on`));
    } finally {
      writeFileSync(lock, "0");
    }
  });
});

describe("down and up", () => {
  it("stops everything, reports a port taken meanwhile, resumes, and purges", async () => {
    const stopped = await meridian(["down"], { stateDir: dir });
    assert.equal(stopped.code, 0, stopped.stderr);
    assert.match(stopped.stdout, /stopped \d+ processes and removed 3 network namespaces/);
    const ns = await runCommand(["ip", "netns", "list"]);
    assert.doesNotMatch(ns.stdout, new RegExp(`mrd-${cs.record.id}-`));
    const nothing = await meridian(["down"], { stateDir: dir });
    assert.equal(nothing.code, 0);
    assert.match(nothing.stdout, /nothing was running/);

    const hubPort = cs.record.clusters.find((c) => c.name === "hub")!.apiserverPort;
    const squatter = net.createServer();
    await new Promise<void>((r) => squatter.listen(hubPort, "127.0.0.1", r));
    try {
      const blocked = await meridian(["up"], { stateDir: dir });
      assert.equal(blocked.code, 1);
      assert.match(
        blocked.stderr,
        new RegExp(
          `port 127\\.0\\.0\\.1:${hubPort} \\(recorded for the hub kube-apiserver\\) is in use by another program`,
        ),
      );
    } finally {
      await new Promise((r) => squatter.close(r));
    }
    const resumed = await meridian(["up"], { stateDir: dir, timeoutMs: 120_000 });
    assert.equal(resumed.code, 0, resumed.stderr);

    const purged = await meridian(["down", "--purge"], { stateDir: dir });
    assert.equal(purged.code, 0);
    assert.ok(!existsSync(dir), "the state dir is gone");
  });
});

describe("environment errors", () => {
  it("says how to build missing binaries", async () => {
    const res = await meridian(["up", "--state-dir", mkdtempSync(path.join(os.tmpdir(), "m-nobin-"))], {
      env: { MERIDIAN_CACHE: "/nonexistent/cache" },
    });
    assert.equal(res.code, 1);
    assert.match(
      res.stderr,
      /missing binaries: kube-apiserver, kube-controller-manager, kubectl, etcd.*scripts\/build-binaries\.sh/s,
    );
  });

  it("says that network namespaces need root", async () => {
    const res = await meridian(["up", "--state-dir", "/tmp/meridian-not-root"], {
      uid: 65534,
      gid: 65534,
      env: { HOME: "/tmp" },
    });
    assert.equal(res.code, 1);
    assert.match(res.stderr, /meridian up creates network namespaces and needs root/);
  });

  it("lets two clustersets run side by side, each on its own ports and networks", async () => {
    const first = mkdtempSync(path.join(os.tmpdir(), "m-side-a-"));
    const second = mkdtempSync(path.join(os.tmpdir(), "m-side-b-"));
    try {
      await withLogsOnFailure([first, second], async () => {
        // allSettled: if one fails, the other must still finish before `down` runs, or its late
        // processes outlive the test.
        const started = await Promise.allSettled([
          up({ stateDir: first, members: 1 }),
          up({ stateDir: second, members: 1 }),
        ]);
        for (const r of started) if (r.status === "rejected") throw r.reason;
        const [a, b] = started.map(
          (r) => (r as PromiseFulfilledResult<Awaited<ReturnType<typeof up>>>).value,
        ) as [Awaited<ReturnType<typeof up>>, Awaited<ReturnType<typeof up>>];
        assert.notEqual(a.record.id, b.record.id);
        const ports = (r: typeof a.record) => [
          r.etcd.clientPort,
          r.etcd.peerPort,
          ...r.clusters.map((c) => c.apiserverPort),
        ];
        assert.ok(!ports(a.record).some((p) => ports(b.record).includes(p)));
        for (const d of [first, second]) {
          const res = await meridian(["status", "-o", "json"], { stateDir: d });
          assert.ok(
            (JSON.parse(res.stdout) as ClustersetStatus).clusters.every((c) => c.health === "Ready"),
            res.stdout,
          );
        }
      });
    } finally {
      await Promise.all([down(first, true), down(second, true)]);
    }
  });
});
