/**
 * The mcs-controller on the real clusterset: every rule a user relies on, from ServiceExport to
 * ServiceImport, ClusterSetIP and EndpointSlices in every member, conditions and conflicts.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import type { KubernetesObject, V1EndpointSlice, V1Service, V1ServicePort } from "@kubernetes/client-node";
import { MCS_API_VERSION, type ServiceExport, type ServiceImport } from "../src/api/mcs.js";
import {
  clusterset,
  eventually,
  meridian,
  testNamespace,
  uniqueName,
  type TestClusterset,
} from "./harness.js";
import { createStaticPod } from "../src/local/pods.js";

const cs: TestClusterset = await clusterset();
const MEMBERS = ["west", "east", "north"];

type Cond = { type: string; status: string; reason: string; message: string };

async function createService(
  cluster: string,
  namespace: string,
  name: string,
  spec: Partial<NonNullable<V1Service["spec"]>> & { ports?: V1ServicePort[] } = {},
): Promise<void> {
  await cs.client(cluster).core.createNamespacedService({
    namespace,
    body: {
      metadata: { name },
      spec: {
        selector: { app: name },
        ports: [{ name: "http", port: 80, targetPort: 8080, protocol: "TCP" }],
        ...spec,
      },
    },
  });
}

let podCounter = 0;
/** A Pod that the endpointslice controller publishes: bound to the member's Node, Running, Ready. */
async function createPod(
  cluster: string,
  namespace: string,
  app: string,
  ready = true,
  hostname?: string,
): Promise<string> {
  const client = cs.client(cluster);
  const name = `${app}-${++podCounter}-${uniqueName("p")}`;
  const index = cs.members.indexOf(cluster) + 1;
  const ip = `10.244.${index}.${100 + (podCounter % 150)}`;
  await createStaticPod(client, {
    namespace,
    name,
    labels: { app },
    nodeName: `${cluster}-node`,
    ip,
    ready,
    hostname,
  });
  return ip;
}

async function exportService(
  cluster: string,
  namespace: string,
  name: string,
  extra: Partial<ServiceExport> = {},
): Promise<void> {
  await cs.client(cluster).apply({
    apiVersion: MCS_API_VERSION,
    kind: "ServiceExport",
    metadata: { name, namespace, ...extra.metadata },
    ...(extra.spec ? { spec: extra.spec } : {}),
  });
}

async function unexport(cluster: string, namespace: string, name: string): Promise<void> {
  await cs
    .client(cluster)
    .deleteIfExists({ apiVersion: MCS_API_VERSION, kind: "ServiceExport", metadata: { name, namespace } });
}

async function serviceImport(
  cluster: string,
  namespace: string,
  name: string,
): Promise<ServiceImport | undefined> {
  return cs.client(cluster).read<ServiceImport & KubernetesObject>({
    apiVersion: MCS_API_VERSION,
    kind: "ServiceImport",
    metadata: { name, namespace },
  });
}

async function exportConditions(
  cluster: string,
  namespace: string,
  name: string,
): Promise<Record<string, Cond>> {
  const e = await cs.client(cluster).read<ServiceExport & KubernetesObject>({
    apiVersion: MCS_API_VERSION,
    kind: "ServiceExport",
    metadata: { name, namespace },
  });
  return Object.fromEntries(((e?.status?.conditions ?? []) as Cond[]).map((c) => [c.type, c]));
}

async function mcsSlices(cluster: string, namespace: string, name: string): Promise<V1EndpointSlice[]> {
  const list = await cs.client(cluster).discovery.listNamespacedEndpointSlice({
    namespace,
    labelSelector: `multicluster.kubernetes.io/service-name=${name}`,
  });
  return list.items;
}

function readyAddressesBySource(slices: V1EndpointSlice[]): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const s of slices) {
    const src = s.metadata!.labels!["multicluster.kubernetes.io/source-cluster"]!;
    for (const e of s.endpoints ?? [])
      if (e.conditions?.ready !== false) (out[src] ??= []).push(...e.addresses);
  }
  for (const k of Object.keys(out)) out[k]!.sort();
  return out;
}

async function conditionsBecome(
  cluster: string,
  ns: string,
  name: string,
  check: (c: Record<string, Cond>) => boolean,
  what: string,
): Promise<Record<string, Cond>> {
  return eventually(what, async () => {
    const c = await exportConditions(cluster, ns, name);
    return check(c) ? c : undefined;
  });
}

describe("exporting a ClusterIP service", () => {
  it("imports it into every member whose namespace exists, with a ClusterSetIP and the exporter's endpoints", async () => {
    const ns = await testNamespace(cs, ["west", "east"]);
    await createService("east", ns, "web");
    const ip = await createPod("east", ns, "web");
    await exportService("east", ns, "web");

    for (const member of ["west", "east"]) {
      const si = await eventually(`a ServiceImport with an IP in ${member}`, async () => {
        const s = await serviceImport(member, ns, "web");
        return s?.spec.ips?.length && s.status?.clusters?.length ? s : undefined;
      });
      assert.equal(si.spec.type, "ClusterSetIP");
      assert.deepEqual(si.spec.ipFamilies, ["IPv4"]);
      assert.match(si.spec.ips![0]!, /^10\.96\./);
      assert.deepEqual(
        si.spec.ports.map((p) => [p.name, p.port, p.protocol]),
        [["http", 80, "TCP"]],
      );
      assert.deepEqual(si.status?.clusters, [{ cluster: "east" }]);
      const slices = await eventually(`MCS slices in ${member}`, async () => {
        const s = await mcsSlices(member, ns, "web");
        return readyAddressesBySource(s)["east"]?.includes(ip) ? s : undefined;
      });
      const labels = slices[0]!.metadata!.labels!;
      assert.equal(labels["multicluster.kubernetes.io/source-cluster"], "east");
      assert.equal(labels["endpointslice.kubernetes.io/managed-by"], "mcs-controller.meridian.dev");
      assert.deepEqual(
        slices[0]!.ports?.map((p) => p.port),
        [8080],
        "slices carry the target port",
      );
    }
    assert.equal(
      await serviceImport("north", ns, "web"),
      undefined,
      "north has no such namespace, so no import",
    );
    const c = await conditionsBecome("east", ns, "web", (c) => c["Ready"]?.status === "True", "Ready=True");
    assert.deepEqual([c["Valid"]?.status, c["Valid"]?.reason], ["True", "Valid"]);
    assert.deepEqual([c["Conflict"]?.status, c["Conflict"]?.reason], ["False", "NoConflicts"]);
    assert.match(c["Ready"]!.message, /east.*west/);

    // The namespace appears in north later: the import follows.
    await cs.client("north").core.createNamespace({ body: { metadata: { name: ns } } });
    try {
      await eventually(
        "an import in north once its namespace exists",
        async () => (await serviceImport("north", ns, "web"))?.spec.ips?.length,
      );
    } finally {
      await cs.client("north").core.deleteNamespace({ name: ns });
    }
  });

  it("follows endpoint changes, and removes everything when the last export goes", async () => {
    const ns = await testNamespace(cs, MEMBERS);
    await createService("west", ns, "api");
    await createService("north", ns, "api");
    const w1 = await createPod("west", ns, "api");
    const n1 = await createPod("north", ns, "api");
    await exportService("west", ns, "api");
    await exportService("north", ns, "api");
    await eventually("both clusters' endpoints in east", async () => {
      const by = readyAddressesBySource(await mcsSlices("east", ns, "api"));
      return by["west"]?.includes(w1) && by["north"]?.includes(n1) ? true : undefined;
    });
    const si = await serviceImport("east", ns, "api");
    assert.deepEqual(si?.status?.clusters, [{ cluster: "north" }, { cluster: "west" }]);

    const w2 = await createPod("west", ns, "api");
    await eventually("a new west endpoint in east", async () =>
      readyAddressesBySource(await mcsSlices("east", ns, "api"))["west"]?.includes(w2) ? true : undefined,
    );
    const notReady = await createPod("west", ns, "api", false);
    await eventually("a not-ready endpoint carried as not ready", async () => {
      const all = (await mcsSlices("east", ns, "api")).flatMap((s) => s.endpoints ?? []);
      const e = all.find((x) => x.addresses.includes(notReady));
      return e && e.conditions?.ready === false ? true : undefined;
    });

    await unexport("north", ns, "api");
    await eventually("north's endpoints to leave every member", async () => {
      for (const m of MEMBERS)
        if (readyAddressesBySource(await mcsSlices(m, ns, "api"))["north"]) return undefined;
      return true;
    });
    assert.ok(await serviceImport("east", ns, "api"), "one export remains, so the import stays");

    await unexport("west", ns, "api");
    await eventually("the import and its slices to disappear everywhere", async () => {
      for (const m of MEMBERS) {
        if (await serviceImport(m, ns, "api")) return undefined;
        if ((await mcsSlices(m, ns, "api")).length > 0) return undefined;
        const derived = await cs.client(m).core.listNamespacedService({
          namespace: ns,
          labelSelector: "app.kubernetes.io/managed-by=mcs-controller.meridian.dev",
        });
        if (derived.items.length > 0) return undefined;
      }
      return true;
    });
  });

  it("exports to a subset of clusters when the export says so, and reports where it is imported", async () => {
    const ns = await testNamespace(cs, MEMBERS);
    await createService("west", ns, "narrow");
    await exportService("west", ns, "narrow", {
      metadata: { annotations: { "multicluster.meridian.dev/export-to": "east" } },
    });
    await eventually("an import in east", async () => serviceImport("east", ns, "narrow"));
    await sleep(1000);
    assert.equal(await serviceImport("north", ns, "narrow"), undefined);
    const c = await conditionsBecome("west", ns, "narrow", (c) => c["Ready"]?.status === "True", "Ready");
    assert.match(c["Ready"]!.message, /east/);
    assert.doesNotMatch(c["Ready"]!.message, /north/);
  });
});

describe("headless services", () => {
  it("import as Headless with no IPs, with endpoint hostnames", async () => {
    const ns = await testNamespace(cs, ["west", "east"]);
    await createService("east", ns, "db", { clusterIP: "None" });
    await createPod("east", ns, "db", true, "db-0");
    await exportService("east", ns, "db");
    const si = await eventually("a headless import in west", async () => serviceImport("west", ns, "db"));
    assert.equal(si.spec.type, "Headless");
    assert.equal(si.spec.ips, undefined);
    const slices = await eventually("headless endpoints in west", async () => {
      const s = await mcsSlices("west", ns, "db");
      return s.some((x) => (x.endpoints ?? []).some((e) => e.hostname === "db-0")) ? s : undefined;
    });
    assert.ok(slices.length > 0);
  });
});

describe("conflicts", () => {
  async function twoExports(
    name: string,
    older: Partial<NonNullable<V1Service["spec"]>>,
    newer: Partial<NonNullable<V1Service["spec"]>>,
    olderExport: Partial<ServiceExport> = {},
    newerExport: Partial<ServiceExport> = {},
  ) {
    const ns = await testNamespace(cs, MEMBERS);
    await createService("west", ns, name, older);
    await exportService("west", ns, name, olderExport);
    await eventually("the first import", async () => serviceImport("east", ns, name));
    // creationTimestamps have one-second precision: make sure the second export is younger.
    await sleep(1100);
    await createService("north", ns, name, newer);
    await exportService("north", ns, name, newerExport);
    return ns;
  }

  it("raise Conflict on every export, with the field, the winner and how many disagree; the oldest wins", async () => {
    const ns = await twoExports(
      "ports",
      {},
      {
        ports: [
          { name: "http", port: 80, targetPort: 8080 },
          { name: "admin", port: 9000 },
        ],
      },
    );
    for (const cluster of ["west", "north"]) {
      const c = await conditionsBecome(
        cluster,
        ns,
        "ports",
        (c) => c["Conflict"]?.status === "True",
        `Conflict on ${cluster}`,
      );
      assert.equal(c["Conflict"]!.reason, "PortConflict");
      assert.match(c["Conflict"]!.message, /port/i);
      assert.match(c["Conflict"]!.message, /west/);
      assert.match(c["Conflict"]!.message, /1\/2 clusters disagree/);
    }
    const si = await eventually("merged ports", async () => {
      const s = await serviceImport("east", ns, "ports");
      return s?.spec.ports.length === 2 ? s : undefined;
    });
    assert.deepEqual(si.spec.ports.map((p) => p.name).sort(), ["admin", "http"], "the union of ports");
  });

  it("resolve type, session affinity and exported labels from the oldest export, joining several reasons with commas", async () => {
    const ns = await twoExports(
      "multi",
      { sessionAffinity: "None" },
      { clusterIP: "None", sessionAffinity: "ClientIP" },
      { spec: { exportedLabels: { tier: "gold" } } },
      { spec: { exportedLabels: { tier: "silver" } } },
    );
    const c = await conditionsBecome(
      "north",
      ns,
      "multi",
      (c) => c["Conflict"]?.status === "True",
      "Conflict",
    );
    const reasons = c["Conflict"]!.reason.split(",");
    for (const r of ["TypeConflict", "SessionAffinityConflict", "LabelsConflict"])
      assert.ok(reasons.includes(r), `${r} in ${c["Conflict"]!.reason}`);
    const si = await eventually("the winner's values", async () => {
      const s = await serviceImport("east", ns, "multi");
      return s?.metadata.labels?.["tier"] ? s : undefined;
    });
    assert.equal(si.spec.type, "ClusterSetIP");
    assert.equal(si.metadata.labels?.["tier"], "gold");
    assert.equal(si.spec.sessionAffinity ?? "None", "None");
  });
});

describe("invalid exports", () => {
  it("explain themselves in Valid=False and import nothing", async () => {
    const ns = await testNamespace(cs, MEMBERS);
    await exportService("west", ns, "ghost");
    const noSvc = await conditionsBecome(
      "west",
      ns,
      "ghost",
      (c) => c["Valid"]?.status === "False",
      "NoService",
    );
    assert.equal(noSvc["Valid"]!.reason, "NoService");

    await cs.client("west").core.createNamespacedService({
      namespace: ns,
      body: { metadata: { name: "ext" }, spec: { type: "ExternalName", externalName: "example.org" } },
    });
    await exportService("west", ns, "ext");
    const ext = await conditionsBecome(
      "west",
      ns,
      "ext",
      (c) => c["Valid"]?.status === "False",
      "InvalidServiceType",
    );
    assert.equal(ext["Valid"]!.reason, "InvalidServiceType");

    await createService("west", "kube-system", "refused-svc").catch(() => undefined);
    await exportService("west", "kube-system", "refused-svc");
    try {
      const refused = await conditionsBecome(
        "west",
        "kube-system",
        "refused-svc",
        (c) => c["Valid"]?.status === "False",
        "NamespaceRefused",
      );
      assert.equal(refused["Valid"]!.reason, "NamespaceRefused");
      assert.match(refused["Valid"]!.message, /kube-system/);
    } finally {
      await unexport("west", "kube-system", "refused-svc");
      await cs
        .client("west")
        .core.deleteNamespacedService({ name: "refused-svc", namespace: "kube-system" })
        .catch(() => undefined);
    }
    await sleep(500);
    for (const m of MEMBERS) {
      assert.equal(await serviceImport(m, ns, "ghost"), undefined);
      assert.equal(await serviceImport(m, ns, "ext"), undefined);
    }
  });

  it("accept a service name at the 63-character DNS label limit", async () => {
    const ns = await testNamespace(cs, ["west", "east"]);
    const name = `s${"x".repeat(61)}z`;
    assert.equal(name.length, 63);
    await createService("west", ns, name);
    await exportService("west", ns, name);
    const si = await eventually("the long-named import", async () => serviceImport("east", ns, name));
    assert.equal(si.metadata.name, name);
  });
});

describe("the CLI", () => {
  it("exports, shows and unexports a service", async () => {
    const ns = await testNamespace(cs, ["west", "east"]);
    await createService("east", ns, "cli");
    const ex = await meridian(["export", "cli", "-n", ns, "--cluster", "east"], { stateDir: cs.stateDir });
    assert.equal(ex.code, 0, ex.stderr);
    await eventually("the import", async () => (await serviceImport("west", ns, "cli"))?.spec.ips?.length);
    const st = await meridian(["status", "-o", "json"], { stateDir: cs.stateDir });
    const s = JSON.parse(st.stdout) as {
      exports: { cluster: string; namespace: string; name: string }[];
      imports: { cluster: string; namespace: string; type: string }[];
    };
    assert.ok(s.exports.some((e) => e.cluster === "east" && e.namespace === ns && e.name === "cli"));
    assert.deepEqual(
      s.imports
        .filter((i) => i.namespace === ns)
        .map((i) => i.cluster)
        .sort(),
      ["east", "west"],
    );
    const table = await meridian(["status"], { stateDir: cs.stateDir });
    assert.match(table.stdout, new RegExp(`EXPORTS[\\s\\S]*east\\s+${ns}/cli\\s+True\\s+True\\s+False`));
    const un = await meridian(["unexport", "cli", "-n", ns, "--cluster", "east"], { stateDir: cs.stateDir });
    assert.equal(un.code, 0, un.stderr);
    await eventually("the import to go", async () =>
      (await serviceImport("west", ns, "cli")) ? undefined : true,
    );
    const again = await meridian(["unexport", "cli", "-n", ns, "--cluster", "east"], {
      stateDir: cs.stateDir,
    });
    assert.equal(again.code, 1);
    assert.match(again.stderr, /east has no ServiceExport/);
    const missing = await meridian(["export", "nope", "-n", ns, "--cluster", "east"], {
      stateDir: cs.stateDir,
    });
    assert.match(missing.stderr, /no Service .*nope.* in east yet/);

    // Exported all the same, but told at once that other clusters reach an SCTP port only in flat mode.
    await cs.client("east").core.createNamespacedService({
      namespace: ns,
      body: {
        metadata: { name: "signalling" },
        spec: {
          selector: { app: "signalling" },
          ports: [
            { name: "sigtran", port: 2905, protocol: "SCTP" },
            { name: "dns", port: 53, protocol: "UDP" },
            { name: "dns-tcp", port: 53, protocol: "TCP" },
          ],
        },
      },
    });
    const sctp = await meridian(["export", "signalling", "-n", ns, "--cluster", "east"], {
      stateDir: cs.stateDir,
    });
    assert.equal(sctp.code, 0, sctp.stderr);
    assert.match(sctp.stdout, /serviceexport\/signalling created/);
    assert.match(
      sctp.stderr,
      new RegExp(
        `warning: 2905/SCTP of ${ns}/signalling cannot cross the gateways, which carry TCP and UDP\\. .*mode: flat`,
      ),
    );
    assert.doesNotMatch(sctp.stderr, /53\/UDP/, "UDP crosses the gateways: no warning for it");
    assert.doesNotMatch(ex.stderr, /cannot cross/, "a TCP-only export gets no such warning");
  });
});
