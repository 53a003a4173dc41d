/**
 * Membership and failures: join and leave, a member's API server dying and returning, revoked
 * credentials, and controller restarts that must change nothing.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { KubernetesObject, V1EndpointSlice } from "@kubernetes/client-node";
import { CLUSTER_ID_PROPERTY, CLUSTERSET_PROPERTY, MCS_API_VERSION } from "../src/api/mcs.js";
import { CLUSTER_API_VERSION, type Cluster } from "../src/api/meridian.js";
import { createStaticPod } from "../src/local/pods.js";
import { readProcessRecord } from "../src/local/processes.js";
import { privateClusterset, eventually, meridian, testNamespace, type TestClusterset } from "./harness.js";

// A clusterset of its own: these tests kill API servers, revoke credentials and make members leave.
const cs: TestClusterset = await privateClusterset(3, ["controller"]);

async function exportedService(ns: string, cluster: string, name: string, ip: string): Promise<void> {
  const c = cs.client(cluster);
  await c.core.createNamespacedService({
    namespace: ns,
    body: { metadata: { name }, spec: { selector: { app: name }, ports: [{ port: 80 }] } },
  });
  const pod = `${name}-${cluster}`;
  await createStaticPod(c, {
    namespace: ns,
    name: pod,
    labels: { app: name },
    nodeName: `${cluster}-node`,
    ip,
  });
  await c.apply({
    apiVersion: MCS_API_VERSION,
    kind: "ServiceExport",
    metadata: { name, namespace: ns },
  });
}

async function sources(cluster: string, ns: string, name: string): Promise<string[]> {
  const list = await cs.client(cluster).discovery.listNamespacedEndpointSlice({
    namespace: ns,
    labelSelector: `multicluster.kubernetes.io/service-name=${name}`,
  });
  return [
    ...new Set(
      list.items.map(
        (s: V1EndpointSlice) => s.metadata!.labels!["multicluster.kubernetes.io/source-cluster"]!,
      ),
    ),
  ].sort();
}

async function clusterObject(name: string): Promise<Cluster | undefined> {
  return cs.client("hub").read<Cluster & KubernetesObject>({
    apiVersion: CLUSTER_API_VERSION,
    kind: "Cluster",
    metadata: { name, namespace: "meridian-system" },
  });
}

function condition(
  c: Cluster | undefined,
  type: string,
): { status: string; reason: string; message: string } | undefined {
  return c?.status?.conditions?.find((x) => x.type === type);
}

describe("the registry", () => {
  it("shows every joined member Ready and Reachable, with a heartbeat and counts", async () => {
    for (const m of cs.members) {
      const c = await eventually(`${m} Ready`, async () => {
        const obj = await clusterObject(m);
        return condition(obj, "Ready")?.status === "True" ? obj : undefined;
      });
      assert.equal(c.spec.clusterID, m);
      assert.equal(condition(c, "Reachable")?.status, "True");
      assert.ok(c.status?.lastHeartbeatTime);
      assert.equal(typeof c.status?.exports, "number");
      assert.match(c.spec.credentials.secretName, /^cluster-.*-credentials$/);
      assert.equal(
        (c.spec as unknown as Record<string, unknown>)["kubeconfig"],
        undefined,
        "no inline credentials",
      );
    }
  });

  it("refuses to join a duplicate cluster ID", async () => {
    const res = await meridian(["join", "west-again", "--context", "west", "--cluster-id", "west"], {
      stateDir: cs.stateDir,
    });
    assert.equal(res.code, 1);
    assert.match(res.stderr, /cluster ID "west".*is already in the clusterset/);
  });
});

describe("a member going away", () => {
  it("has its endpoints withdrawn everywhere within the bound when its API server dies, and restored when it returns", async () => {
    const ns = await testNamespace(cs, ["west", "east", "north"]);
    await exportedService(ns, "west", "shared", "10.244.1.201");
    await exportedService(ns, "north", "shared", "10.244.3.201");
    await eventually("both sources in east", async () =>
      (await sources("east", ns, "shared")).join() === "north,west" ? true : undefined,
    );

    const pid = readProcessRecord(cs.paths.pidFile("north-kube-apiserver"))!.pid;
    process.kill(pid, "SIGKILL");
    const killedAt = Date.now();
    try {
      await eventually(
        "north's endpoints to leave east and west",
        async () => {
          const e = await sources("east", ns, "shared");
          const w = await sources("west", ns, "shared");
          return e.join() === "west" && w.join() === "west" ? true : undefined;
        },
        20_000,
      );
      const seconds = (Date.now() - killedAt) / 1000;
      assert.ok(seconds < 12, `withdrawn after ${seconds}s (bound 5 s + detection)`);
      const c = await eventually("north Reachable=False", async () => {
        const obj = await clusterObject("north");
        return condition(obj, "Reachable")?.status === "False" ? obj : undefined;
      });
      assert.equal(condition(c, "Ready")?.reason, "APIServerUnreachable");
    } finally {
      const res = await meridian(["up"], { stateDir: cs.stateDir, timeoutMs: 120_000 });
      assert.equal(res.code, 0, res.stderr);
    }
    await eventually(
      "north's endpoints back in east",
      async () => ((await sources("east", ns, "shared")).join() === "north,west" ? true : undefined),
      30_000,
    );
  });

  it("reports revoked credentials clearly, withdraws only that member, and recovers on a new join", async () => {
    const ns = await testNamespace(cs, ["west", "east", "north"]);
    await exportedService(ns, "east", "svc", "10.244.2.202");
    await exportedService(ns, "west", "svc", "10.244.1.202");
    await eventually("both sources in north", async () =>
      (await sources("north", ns, "svc")).join() === "east,west" ? true : undefined,
    );
    // Deleting the token Secret revokes the token.
    await cs
      .client("east")
      .core.deleteNamespacedSecret({ name: "meridian-controller-token", namespace: "meridian-system" });
    const c = await eventually(
      "east Ready=False/CredentialsRejected",
      async () => {
        const obj = await clusterObject("east");
        return condition(obj, "Ready")?.reason === "CredentialsRejected" ? obj : undefined;
      },
      30_000,
    );
    assert.match(condition(c, "Ready")!.message, /rejects Meridian's credentials.*meridian join/);
    await eventually("east's endpoints withdrawn from north", async () =>
      (await sources("north", ns, "svc")).join() === "west" ? true : undefined,
    );
    assert.equal(condition(await clusterObject("west"), "Ready")?.status, "True", "west is not disturbed");

    const left = await meridian(["leave", "east", "--hub-only"], { stateDir: cs.stateDir });
    assert.equal(left.code, 0, left.stderr);
    const joined = await meridian(["join", "east"], { stateDir: cs.stateDir });
    assert.equal(joined.code, 0, joined.stderr);
    await eventually(
      "east back with new credentials",
      async () => ((await sources("north", ns, "svc")).join() === "east,west" ? true : undefined),
      30_000,
    );
  });
});

describe("leave and join", () => {
  it("leave removes everything Meridian wrote in the member and the member from every import; join brings it back", async () => {
    const ns = await testNamespace(cs, ["west", "east", "north"]);
    await exportedService(ns, "north", "lv", "10.244.3.203");
    await exportedService(ns, "west", "lv", "10.244.1.203");
    // The first export of a new namespace waits behind whatever the controller still has queued
    // from earlier tests; on the 2-core CI machine that once took over 15 s.
    await eventually(
      "imports everywhere",
      async () => ((await sources("east", ns, "lv")).join() === "north,west" ? true : undefined),
      30_000,
    );

    const res = await meridian(["leave", "north"], { stateDir: cs.stateDir });
    assert.equal(res.code, 0, res.stderr);
    assert.equal(await clusterObject("north"), undefined);
    const n = cs.client("north");
    const imports = (await n.objects.list(MCS_API_VERSION, "ServiceImport")) as { items: unknown[] };
    assert.equal(imports.items.length, 0, "no ServiceImports left in north");
    const owned = await n.discovery.listEndpointSliceForAllNamespaces({
      labelSelector: "app.kubernetes.io/managed-by=mcs-controller.meridian.dev",
    });
    assert.equal(owned.items.length, 0, "no imported slices left in north");
    assert.equal(
      await n.read({
        apiVersion: "about.k8s.io/v1beta1",
        kind: "ClusterProperty",
        metadata: { name: CLUSTERSET_PROPERTY },
      }),
      undefined,
    );
    assert.equal(
      await n.read({
        apiVersion: "rbac.authorization.k8s.io/v1",
        kind: "ClusterRole",
        metadata: { name: "meridian-controller" },
      }),
      undefined,
    );
    await eventually("north's endpoints gone from east", async () =>
      (await sources("east", ns, "lv")).join() === "west" ? true : undefined,
    );
    const again = await meridian(["leave", "north"], { stateDir: cs.stateDir });
    assert.match(again.stderr, /no Cluster "north" in the hub/);

    const joined = await meridian(["join", "north"], { stateDir: cs.stateDir });
    assert.equal(joined.code, 0, joined.stderr);
    const prop = await n.read<KubernetesObject & { spec: { value: string } }>({
      apiVersion: "about.k8s.io/v1beta1",
      kind: "ClusterProperty",
      metadata: { name: CLUSTER_ID_PROPERTY },
    });
    assert.equal(prop?.spec.value, "north");
    await eventually(
      "north back in east's import",
      async () => ((await sources("east", ns, "lv")).join() === "north,west" ? true : undefined),
      30_000,
    );
  });
});

describe("a controller restart", () => {
  it("rewrites no import, derived Service, slice or export status that is already right", async () => {
    const ns = await testNamespace(cs, ["west", "east", "north"]);
    await exportedService(ns, "west", "steady", "10.244.1.204");
    await eventually("imports everywhere", async () =>
      (await sources("north", ns, "steady")).join() === "west" ? true : undefined,
    );
    const versions = async (): Promise<string[]> => {
      const out: string[] = [];
      for (const m of ["west", "east", "north"]) {
        const c = cs.client(m);
        const si = (await c.objects.list(MCS_API_VERSION, "ServiceImport", ns)) as {
          items: KubernetesObject[];
        };
        const sl = await c.discovery.listNamespacedEndpointSlice({ namespace: ns });
        const ex = (await c.objects.list(MCS_API_VERSION, "ServiceExport", ns)) as {
          items: KubernetesObject[];
        };
        for (const o of [...si.items, ...sl.items, ...ex.items])
          out.push(`${m}/${o.kind ?? ""}/${o.metadata!.name!}@${o.metadata!.resourceVersion!}`);
      }
      return out.sort();
    };
    // The state the restart must preserve: settled, i.e. unchanged over a second.
    let last = await versions();
    const before = await eventually("the state to settle", async () => {
      await new Promise((r) => setTimeout(r, 1000));
      const now = await versions();
      const settled = JSON.stringify(now) === JSON.stringify(last);
      last = now;
      return settled ? now : undefined;
    });
    const pid = readProcessRecord(cs.paths.pidFile("hub-controller"))!.pid;
    process.kill(pid, "SIGTERM");
    await eventually("the controller to exit", () =>
      readProcessRecord(cs.paths.pidFile("hub-controller")) && isGone(pid) ? true : undefined,
    );
    const res = await meridian(["up"], { stateDir: cs.stateDir, timeoutMs: 120_000 });
    assert.equal(res.code, 0, res.stderr);
    // Give the new controller time to sync and run its start-up resync of every key.
    await new Promise((r) => setTimeout(r, 8000));
    assert.deepEqual(await versions(), before);
  });
});

function isGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch {
    return true;
  }
}
