/**
 * The local clusterset as a user sees it: `meridian status`, processes run as pods behind Services,
 * `meridian exec`, network isolation between members, and clear errors for bad input.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { describe, it } from "node:test";
import type { V1EndpointSlice } from "@kubernetes/client-node";
import { CLUSTER_ID_PROPERTY } from "../src/api/mcs.js";
import type { ClustersetStatus } from "../src/local/clusterset.js";
import { GATEWAY_NOTSENT_LOWAT } from "../src/local/network.js";
import {
  clusterset,
  eventually,
  meridian,
  MERIDIAN_BIN,
  testNamespace,
  uniqueName,
  type TestClusterset,
} from "./harness.js";

const cs: TestClusterset = await clusterset();

const whereami = (port = 8080) => [process.execPath, MERIDIAN_BIN, "whereami", "--port", String(port)];

async function endpointAddresses(
  cluster: string,
  namespace: string,
  service: string,
): Promise<{ ip: string; ready: boolean }[]> {
  const list = await cs.client(cluster).discovery.listNamespacedEndpointSlice({
    namespace,
    labelSelector: `kubernetes.io/service-name=${service}`,
  });
  return list.items.flatMap((s: V1EndpointSlice) =>
    (s.endpoints ?? []).flatMap((e) =>
      e.addresses.map((ip) => ({ ip, ready: e.conditions?.ready !== false })),
    ),
  );
}

async function createService(
  cluster: string,
  namespace: string,
  name: string,
  app: string,
  port = 8080,
): Promise<void> {
  await cs.client(cluster).core.createNamespacedService({
    namespace,
    body: {
      metadata: { name },
      spec: { selector: { app }, ports: [{ name: "http", port, protocol: "TCP" }] },
    },
  });
}

function curlFrom(cluster: string, url: string): Promise<{ code: number; stdout: string }> {
  return meridian(["exec", cluster, "--", "curl", "-s", "-m", "2", url], { stateDir: cs.stateDir });
}

describe("meridian status", () => {
  it("lists the hub and three members, each Ready, on separate networks", async () => {
    const res = await meridian(["status", "-o", "json"], { stateDir: cs.stateDir });
    assert.equal(res.code, 0, res.stderr);
    const s = JSON.parse(res.stdout) as ClustersetStatus;
    assert.equal(s.kind, "ClustersetStatus");
    assert.deepEqual(
      s.clusters.map((c) => [c.name, c.role, c.context, c.health]),
      [
        ["hub", "hub", "hub", "Ready"],
        ["west", "member", "west", "Ready"],
        ["east", "member", "east", "Ready"],
        ["north", "member", "north", "Ready"],
      ],
    );
    const members = s.clusters.filter((c) => c.role === "member");
    assert.equal(new Set(members.map((c) => c.network!.namespace)).size, 3);
    assert.equal(new Set(members.map((c) => c.network!.podCIDR)).size, 3);
    for (const c of members) assert.match(c.network!.gatewayAddress, /^172\.31\.0\.\d+$/);
    assert.ok(existsSync(s.kubeconfig));
  });

  it("prints a table naming every cluster", async () => {
    const res = await meridian(["status"], { stateDir: cs.stateDir });
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /^CLUSTER\s+ROLE\s+HEALTH/);
    for (const name of ["hub", "west", "east", "north"])
      assert.match(res.stdout, new RegExp(`^${name}\\s`, "m"));
  });
});

describe("clusters", () => {
  it("serve the MCS CRDs (v1alpha1 and v1beta1) and Meridian's own, and name themselves", async () => {
    for (const name of ["hub", ...cs.members]) {
      const client = cs.client(name);
      for (const crd of ["serviceexports.multicluster.x-k8s.io", "serviceimports.multicluster.x-k8s.io"]) {
        const obj = await client.read<{
          apiVersion: string;
          kind: string;
          metadata: object;
          spec: { versions: { name: string; served: boolean }[] };
        }>({
          apiVersion: "apiextensions.k8s.io/v1",
          kind: "CustomResourceDefinition",
          metadata: { name: crd },
        });
        assert.deepEqual(
          obj?.spec.versions
            .filter((v) => v.served)
            .map((v) => v.name)
            .sort(),
          ["v1alpha1", "v1beta1"],
          `${crd} in ${name}`,
        );
      }
      assert.ok(
        await client.read({
          apiVersion: "apiextensions.k8s.io/v1",
          kind: "CustomResourceDefinition",
          metadata: { name: "clusters.meridian.dev" },
        }),
      );
    }
    for (const name of cs.members) {
      const prop = await cs
        .client(name)
        .read<{ apiVersion: string; kind: string; metadata: object; spec: { value: string } }>({
          apiVersion: "about.k8s.io/v1beta1",
          kind: "ClusterProperty",
          metadata: { name: CLUSTER_ID_PROPERTY },
        });
      assert.equal(prop?.spec.value, name);
    }
  });
});

describe("meridian run", () => {
  it("publishes a process as a ready EndpointSlice endpoint behind a Service, and removes it when the process exits", async () => {
    const ns = await testNamespace(cs, ["east"]);
    const app = uniqueName("web");
    await createService("east", ns, "web", app);
    const name = uniqueName("whereami");
    const run = spawn(
      process.execPath,
      [MERIDIAN_BIN, "run", "east", "-n", ns, "--labels", `app=${app}`, "--name", name, "--", ...whereami()],
      {
        env: { ...process.env, MERIDIAN_STATE_DIR: cs.stateDir },
        stdio: "ignore",
      },
    );
    const exited = new Promise<number | null>((resolve) => run.once("exit", (code) => resolve(code)));
    const pod = await eventually("the pod to be Running", async () => {
      const p = await cs.client("east").core.readNamespacedPod({ name, namespace: ns });
      return p.status?.phase === "Running" ? p : undefined;
    });
    const ip = pod.status!.podIP!;
    assert.match(ip, /^10\.244\.2\.\d+$/, "the address comes from east's pod CIDR");
    await eventually("the pod as a ready endpoint", async () => {
      const eps = await endpointAddresses("east", ns, "web");
      return eps.some((e) => e.ip === ip && e.ready) ? true : undefined;
    });
    const answer = await eventually("whereami to answer inside east", async () => {
      const res = await curlFrom("east", `http://${ip}:8080/hello`);
      return res.code === 0
        ? (JSON.parse(res.stdout) as { cluster: string; pod: string; path: string })
        : undefined;
    });
    assert.deepEqual([answer.cluster, answer.pod, answer.path], ["east", name, "/hello"]);

    run.kill("SIGTERM");
    await exited;
    await eventually("the endpoint to leave the slice", async () => {
      const eps = await endpointAddresses("east", ns, "web");
      return eps.some((e) => e.ip === ip) ? undefined : true;
    });
    await assert.rejects(cs.client("east").core.readNamespacedPod({ name, namespace: ns }), /404|not found/i);
  });

  it("with --ready-port, holds the endpoint not-ready until the port accepts connections", async () => {
    const ns = await testNamespace(cs, ["east"]);
    const app = uniqueName("slow");
    await createService("east", ns, "slow", app, 7777);
    const slowStart = ["sh", "-c", `sleep 3; exec ${whereami(7777).join(" ")}`];
    const run = spawn(
      process.execPath,
      [
        MERIDIAN_BIN,
        "run",
        "east",
        "-n",
        ns,
        "--labels",
        `app=${app}`,
        "--ready-port",
        "7777",
        "--",
        ...slowStart,
      ],
      {
        env: { ...process.env, MERIDIAN_STATE_DIR: cs.stateDir },
        stdio: "ignore",
      },
    );
    try {
      const notReady = await eventually("a not-ready endpoint", async () => {
        const eps = await endpointAddresses("east", ns, "slow");
        return eps.length === 1 ? eps[0] : undefined;
      });
      assert.equal(notReady.ready, false, "not ready while nothing listens");
      await eventually("the endpoint to turn ready", async () =>
        (await endpointAddresses("east", ns, "slow"))[0]?.ready ? true : undefined,
      );
    } finally {
      run.kill("SIGTERM");
    }
  });

  it("stops the process when its Pod is deleted", async () => {
    const ns = await testNamespace(cs, ["west"]);
    const name = uniqueName("victim");
    const res = await meridian(
      ["run", "west", "-n", ns, "--name", name, "--detach", "--ready-port", "9090", "--", ...whereami(9090)],
      { stateDir: cs.stateDir },
    );
    assert.equal(res.code, 0, res.stderr);
    const ip = /at (\d+\.\d+\.\d+\.\d+)/.exec(res.stdout)?.[1];
    assert.ok(ip, res.stdout);
    assert.equal((await curlFrom("west", `http://${ip}:9090/`)).code, 0);
    await cs.client("west").core.deleteNamespacedPod({ name, namespace: ns });
    await eventually("the process to stop", async () =>
      (await curlFrom("west", `http://${ip}:9090/`)).code !== 0 ? true : undefined,
    );
  });

  it("keeps pods of different members apart: a pod in one member cannot reach a pod in another", async () => {
    const ns = await testNamespace(cs, ["west", "east"]);
    const res = await meridian(
      [
        "run",
        "west",
        "-n",
        ns,
        "--name",
        "server",
        "--detach",
        "--ready-port",
        "8081",
        "--",
        ...whereami(8081),
      ],
      { stateDir: cs.stateDir },
    );
    assert.equal(res.code, 0, res.stderr);
    const ip = /at (\d+\.\d+\.\d+\.\d+)/.exec(res.stdout)![1]!;
    const curl = ["curl", "-s", "-m", "2", "-o", "/dev/null", `http://${ip}:8081/`];
    const sameMember = await meridian(["run", "west", "-n", ns, "--", ...curl], { stateDir: cs.stateDir });
    assert.equal(sameMember.code, 0, `a pod in west reaches west's pod: ${sameMember.stderr}`);
    const otherMember = await meridian(["run", "east", "-n", ns, "--", ...curl], { stateDir: cs.stateDir });
    assert.notEqual(otherMember.code, 0, "a pod in east must not reach west's pod");
    assert.notEqual(
      (await curlFrom("north", `http://${ip}:8081/`)).code,
      0,
      "north's node must not reach west's pod",
    );
  });

  it("returns the command's exit code, and says what is wrong with bad input", async () => {
    const ns = await testNamespace(cs, ["north"]);
    assert.equal(
      (await meridian(["run", "north", "-n", ns, "--", "sh", "-c", "exit 3"], { stateDir: cs.stateDir }))
        .code,
      3,
    );

    const unknown = await meridian(["run", "nowhere", "--", "true"], { stateDir: cs.stateDir });
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /unknown cluster "nowhere"; this clusterset has: hub, west, east, north/);

    const hub = await meridian(["run", "hub", "--", "true"], { stateDir: cs.stateDir });
    assert.match(hub.stderr, /hub is the hub; it runs no workloads/);

    const noNs = await meridian(["run", "north", "-n", "does-not-exist", "--", "true"], {
      stateDir: cs.stateDir,
    });
    assert.equal(noNs.code, 1);
    assert.match(noNs.stderr, /namespace "does-not-exist" does not exist in north.*--create-namespace/s);

    const badLabels = await meridian(["run", "north", "--labels", "app", "--", "true"], {
      stateDir: cs.stateDir,
    });
    assert.match(badLabels.stderr, /invalid label "app"/);

    const badName = await meridian(["run", "north", "--name", "Not_A_Name", "--", "true"], {
      stateDir: cs.stateDir,
    });
    assert.match(badName.stderr, /invalid pod name "Not_A_Name"/);

    const created = await meridian(
      ["run", "north", "-n", uniqueName("fresh"), "--create-namespace", "--", "true"],
      { stateDir: cs.stateDir },
    );
    assert.equal(created.code, 0, created.stderr);
  });
});

describe("meridian exec", () => {
  it("runs inside the member's network and returns the command's exit code", async () => {
    const west = cs.record.clusters.find((c) => c.name === "west")!;
    const addr = await meridian(["exec", "west", "--", "ip", "-4", "-o", "addr", "show", "pods"], {
      stateDir: cs.stateDir,
    });
    assert.equal(addr.code, 0, addr.stderr);
    assert.match(addr.stdout, new RegExp(`inet ${west.network!.nodeAddress.replaceAll(".", "\\.")}/24`));
    assert.equal(
      (await meridian(["exec", "west", "--", "sh", "-c", "exit 7"], { stateDir: cs.stateDir })).code,
      7,
    );
    const unknown = await meridian(["exec", "nowhere", "--", "true"], { stateDir: cs.stateDir });
    assert.match(unknown.stderr, /unknown cluster "nowhere"/);
  });

  it("runs where sockets keep their unsent bytes in the process, for the gateway's fair sending", async () => {
    for (const member of ["west", "east"]) {
      const lowat = await meridian(["exec", member, "--", "cat", "/proc/sys/net/ipv4/tcp_notsent_lowat"], {
        stateDir: cs.stateDir,
      });
      assert.equal(lowat.stdout.trim(), String(GATEWAY_NOTSENT_LOWAT), member);
    }
  });

  it("reaches the other members' gateway addresses over the shared network, and nothing of theirs else", async () => {
    const east = cs.record.clusters.find((c) => c.name === "east")!;
    // A listener of our own on east's gateway address (east's real gateway holds 15443).
    const listener = spawn("ip", ["netns", "exec", east.network!.nodeNamespace, process.execPath, "-e",
      `require("net").createServer((s) => s.end("gw\\n")).listen(15444, "${east.network!.gatewayAddress}")`]); // prettier-ignore
    try {
      const viaWan = await eventually("east's gateway address to answer from west", async () => {
        const res = await meridian(
          ["exec", "west", "--", "curl", "-s", "-m", "2", `telnet://${east.network!.gatewayAddress}:15444`],
          { stateDir: cs.stateDir },
        );
        return res.stdout.includes("gw") ? res : undefined;
      });
      assert.match(viaWan.stdout, /gw/);
    } finally {
      listener.kill();
    }
  });
});

describe("bad input to status", () => {
  it("rejects an unknown output format and an empty state dir", async () => {
    const fmt = await meridian(["status", "-o", "xml"], { stateDir: cs.stateDir });
    assert.equal(fmt.code, 1);
    assert.match(fmt.stderr, /unknown output format "xml": use table, json or yaml/);
    const empty = await meridian(["status", "--state-dir", "/nonexistent/meridian"]);
    assert.equal(empty.code, 1);
    assert.match(empty.stderr, /no clusterset in \/nonexistent\/meridian; create one with 'meridian up/);
  });
});
