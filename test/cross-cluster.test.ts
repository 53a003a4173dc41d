/**
 * Cross-cluster traffic on the local clusterset, end to end: members share no pod network, so a
 * client in one member reaches a service exported by another only through the two members'
 * gateways (mutual TLS between them), by the service's clusterset.local name.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import type { KubernetesObject } from "@kubernetes/client-node";
import { MCS_API_VERSION } from "../src/api/mcs.js";
import { ANNOTATION_ALLOWED_CLUSTERS, ANNOTATION_MODE } from "../src/gateway/kube-routes.js";
import { GATEWAY_NODE_FLAGS } from "../src/gateway/node-flags.js";
import { readProcessRecord } from "../src/local/processes.js";
import type { RoutingSummary } from "../src/cli/mcs.js";
import type { WhereamiAnswer } from "../src/demo/whereami.js";
import {
  clusterset,
  eventually,
  meridian,
  testNamespace,
  runWhereami,
  type TestClusterset,
} from "./harness.js";

const cs: TestClusterset = await clusterset();
const PORT = 8080;

const whereamiIn = (cluster: string, ns: string, name: string, withUdp = false) =>
  runWhereami(cs, cluster, ns, name, PORT, withUdp);

/** A UDP client in west's network: one datagram to host:port, and the answer (undefined if none). */
async function udpAnswerIn(from: string, host: string, port: number): Promise<WhereamiAnswer | undefined> {
  const client = [
    "const s = require('node:dgram').createSocket('udp4');",
    "s.on('message', (m) => { process.stdout.write(m); process.exit(0); });",
    "setTimeout(() => process.exit(3), 2000);",
    `s.send('hello over udp', ${port}, '${host}');`,
  ].join(" ");
  const res = await meridian(["exec", from, "--", process.execPath, "-e", client], { stateDir: cs.stateDir });
  return res.code === 0 ? (JSON.parse(res.stdout) as WhereamiAnswer) : undefined;
}

async function exportFrom(
  cluster: string,
  ns: string,
  name: string,
  annotations?: Record<string, string>,
  spec?: object,
) {
  await cs.client(cluster).apply({
    apiVersion: MCS_API_VERSION,
    kind: "ServiceExport",
    metadata: { name, namespace: ns, ...(annotations ? { annotations } : {}) },
    ...(spec ? { spec } : {}),
  });
}

async function routingIn(ns: string): Promise<RoutingSummary[]> {
  const res = await meridian(["status", "-o", "json"], { stateDir: cs.stateDir });
  return (JSON.parse(res.stdout) as { routing: RoutingSummary[] }).routing.filter((r) => r.namespace === ns);
}

/** Which cluster answered each of `n` requests from `from`, in order ("failed" for a failure). */
async function answersFrom(from: string, ns: string, name: string, n: number): Promise<string[]> {
  const url = `http://${name}.${ns}.svc.clusterset.local:${PORT}/`;
  const script = `for i in $(seq ${n}); do curl -s -m 3 ${url} || echo failed; echo; done`;
  const res = await meridian(["exec", from, "--", "sh", "-c", script], {
    stateDir: cs.stateDir,
    timeoutMs: 120_000,
  });
  return res.stdout
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => (l.startsWith("{") ? (JSON.parse(l) as { cluster: string }).cluster : "failed"));
}

/** Which cluster answered a request from `from` (undefined when the request failed). */
async function answeredBy(from: string, ns: string, name: string): Promise<string | undefined> {
  const res = await meridian(
    ["exec", from, "--", "curl", "-s", "-m", "3", `http://${name}.${ns}.svc.clusterset.local:${PORT}/`],
    { stateDir: cs.stateDir },
  );
  if (res.code !== 0) return undefined;
  return (JSON.parse(res.stdout) as { cluster: string }).cluster;
}

/** A namespace where east and north both export `name`, with west seeing answers from both. */
async function servedByEastAndNorth(name: string): Promise<string> {
  const ns = await testNamespace(cs, ["west", "east", "north"]);
  for (const cluster of ["east", "north"]) {
    await whereamiIn(cluster, ns, name);
    await exportFrom(cluster, ns, name);
  }
  await eventually("answers from both east and north", async () => {
    const seen = new Set(await answersFrom("west", ns, name, 12));
    return seen.has("east") && seen.has("north") ? true : undefined;
  });
  return ns;
}

async function onlyNorthAnswers(ns: string, name: string): Promise<void> {
  await eventually("only north answers", async () => {
    return (await answersFrom("west", ns, name, 6)).every((who) => who === "north") ? true : undefined;
  });
}

describe("cross-cluster traffic through the gateways", () => {
  it("a client in west reaches east's service by its clusterset.local name, and so does a pod", async () => {
    const ns = await testNamespace(cs, ["west", "east"]);
    await whereamiIn("east", ns, "web");
    await exportFrom("east", ns, "web");
    await eventually("east's answer in west", async () =>
      (await answeredBy("west", ns, "web")) === "east" ? true : undefined,
    );
    // A process run as a pod of west: its own network namespace, routed through west's node.
    const pod = await meridian(
      [
        "run",
        "west",
        "-n",
        ns,
        "--",
        "curl",
        "-s",
        "-m",
        "3",
        `http://web.${ns}.svc.clusterset.local:${PORT}/`,
      ],
      { stateDir: cs.stateDir },
    );
    assert.equal(pod.code, 0, pod.stderr);
    assert.equal((JSON.parse(pod.stdout) as { cluster: string }).cluster, "east");

    const explained = await eventually("explain to find the whole path working", async () => {
      const res = await meridian(["explain", "web", "-n", ns, "--from", "west"], { stateDir: cs.stateDir });
      return res.code === 0 ? res : undefined;
    });
    assert.match(explained.stdout, new RegExp(`${ns}/web from west: reachable`));
    assert.match(explained.stdout, /✔\s+connection\s+connected to 10\.96\.\d+\.\d+:8080/);
    assert.match(explained.stdout, /✔\s+gateway\s+port 8080: east 100%/);

    // A Service nobody exported: explain says so, and how to fix it.
    await cs.client("east").core.createNamespacedService({
      namespace: ns,
      body: { metadata: { name: "hidden" }, spec: { selector: { app: "hidden" }, ports: [{ port: PORT }] } },
    });
    const hidden = await meridian(["explain", "hidden", "-n", ns, "--from", "west"], {
      stateDir: cs.stateDir,
    });
    assert.equal(hidden.code, 2);
    assert.match(hidden.stdout, new RegExp(`→ meridian export hidden -n ${ns} --cluster east`));

    // An SCTP-only export: imported, but no gateway can carry it; explain says why and what to do.
    await cs.client("east").core.createNamespacedService({
      namespace: ns,
      body: {
        metadata: { name: "signal" },
        spec: { selector: { app: "web" }, ports: [{ port: 2905, protocol: "SCTP" }] },
      },
    });
    await exportFrom("east", ns, "signal");
    const sctp = await eventually("explain to find the SCTP-only import", async () => {
      const res = await meridian(["explain", "signal", "-n", ns, "--from", "west"], {
        stateDir: cs.stateDir,
      });
      return /no TCP or UDP port/.test(res.stdout) ? res : undefined;
    });
    assert.equal(sctp.code, 2, sctp.stdout);
    assert.match(sctp.stdout, /✔\s+import in west\s+ClusterSetIP [\d.]+, ports 2905\/SCTP, from east/);
    assert.match(
      sctp.stdout,
      new RegExp(`✖\\s+gateway\\s+${ns}/signal has no TCP or UDP port: 2905/SCTP cannot cross a gateway`),
    );
    assert.match(sctp.stdout, /→ SCTP needs flat mode .*gateway\.meridian\.dev\/mode: flat/);

    const bad = await meridian(["explain", "web", "-n", ns, "--from", "nowhere"], { stateDir: cs.stateDir });
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /--from nowhere is not one of the members \(west, east, north\)/);
  });

  it("carries UDP: a datagram from west to east's service by name gets east's answer, beside TCP on the same port", async () => {
    const ns = await testNamespace(cs, ["west", "east"]);
    // whereami answers UDP datagrams on its HTTP port's number; this Service offers both.
    await whereamiIn("east", ns, "both", true);
    await exportFrom("east", ns, "both");
    const answer = await eventually("east's UDP answer in west", () =>
      udpAnswerIn("west", `both.${ns}.svc.clusterset.local`, PORT),
    );
    assert.equal(answer.cluster, "east");
    assert.equal(answer.path, "hello over udp", "the datagram crossed whole");
    assert.equal(await answeredBy("west", ns, "both"), "east", "TCP on the same port number still works");

    const explained = await eventually("explain to see both ports routed", async () => {
      const res = await meridian(["explain", "both", "-n", ns, "--from", "west"], { stateDir: cs.stateDir });
      return res.code === 0 && /8080\/UDP: east/.test(res.stdout) ? res : undefined;
    });
    assert.match(
      explained.stdout,
      new RegExp(`✔\\s+gateway\\s+port ${PORT}: east 100%; port ${PORT}/UDP: east 100%`),
    );
    const routes = (await routingIn(ns)).filter((r) => r.name === "both" && r.cluster === "west");
    assert.deepEqual(
      routes.map((r) => `${r.port}/${r.protocol ?? "TCP"}`).sort(),
      [`${PORT}/TCP`, `${PORT}/UDP`],
      "meridian status shows the UDP route",
    );
  });

  it("spreads over every exporter, and fails over when one cluster's endpoints die", async () => {
    const ns = await servedByEastAndNorth("spread");
    await cs.client("east").core.deleteNamespacedPod({ name: "spread-east", namespace: ns });
    const started = Date.now();
    await onlyNorthAnswers(ns, "spread");
    process.stdout.write(
      `# failover to north complete ${Date.now() - started} ms after east's pod was deleted\n`,
    );
  });

  it("refuses a consumer the export does not allow, at the exporting gateway, and logs who it was", async () => {
    const ns = await testNamespace(cs, ["west", "east", "north"]);
    await whereamiIn("east", ns, "private");
    await exportFrom("east", ns, "private", { [ANNOTATION_ALLOWED_CLUSTERS]: "north" });
    await eventually("north is let in", async () =>
      (await answeredBy("north", ns, "private")) === "east" ? true : undefined,
    );
    assert.equal(await answeredBy("west", ns, "private"), undefined, "west must be refused");
    const explained = await meridian(["explain", "private", "-n", ns, "--from", "west", "-o", "json"], {
      stateDir: cs.stateDir,
    });
    assert.equal(explained.code, 2, explained.stderr);
    const steps = (
      JSON.parse(explained.stdout) as { steps: Array<{ check: string; status: string; hint?: string }> }
    ).steps;
    const access = steps.find((x) => x.check === "access")!;
    assert.equal(access.status, "fail");
    assert.match(
      access.hint!,
      /add west to gateway\.meridian\.dev\/allowed-clusters on the ServiceExport in east/,
    );
    assert.equal(steps.find((x) => x.check === "connection")?.status, "fail");
    await eventually("the refusal in east's gateway log", () => {
      const log = readFileSync(cs.paths.logFile("east-gateway"), "utf8");
      return log.split("\n").some((l) => l.includes("access denied") && l.includes("west") && l.includes(ns))
        ? true
        : undefined;
    });
  });

  it("lets in only the allowed namespace of a consumer cluster, by the client pod's address", async () => {
    const ns = await testNamespace(cs, ["west", "east", "north"]);
    const other = await testNamespace(cs, ["west"]);
    await whereamiIn("east", ns, "ledger");
    await exportFrom("east", ns, "ledger", { [ANNOTATION_ALLOWED_CLUSTERS]: `west/${ns}` });
    const fromPodIn = async (namespace: string) => {
      const url = `http://ledger.${ns}.svc.clusterset.local:${PORT}/`;
      const res = await meridian(["run", "west", "-n", namespace, "--", "curl", "-s", "-m", "3", url], {
        stateDir: cs.stateDir,
      });
      return res.code === 0 ? (JSON.parse(res.stdout) as { cluster: string }).cluster : undefined;
    };
    await eventually("a pod in the allowed namespace is let in", async () =>
      (await fromPodIn(ns)) === "east" ? true : undefined,
    );
    assert.equal(await fromPodIn(other), undefined, `a pod in ${other} must be refused`);
    assert.equal(await answeredBy("west", ns, "ledger"), undefined, "the node is in no namespace: refused");
    assert.equal(await answeredBy("north", ns, "ledger"), undefined, "north is not listed at all");
    await eventually("the refusal of the other namespace in east's gateway log", () => {
      const log = readFileSync(cs.paths.logFile("east-gateway"), "utf8");
      return log
        .split("\n")
        .some(
          (l) => l.includes("access denied") && l.includes(`"namespace":"${other}"`) && l.includes("west"),
        )
        ? true
        : undefined;
    });
    const explained = await meridian(["explain", "ledger", "-n", ns, "--from", "west", "-o", "json"], {
      stateDir: cs.stateDir,
    });
    const access = (
      JSON.parse(explained.stdout) as { steps: Array<{ check: string; status: string; detail: string }> }
    ).steps.find((x) => x.check === "access")!;
    assert.equal(access.status, "warn");
    assert.equal(access.detail, `east lets in clients of west in ${ns} only`);
  });

  it("meridian status shows each member's routing; a flat-mode service has no gateway in its path", async () => {
    const ns = await testNamespace(cs, ["west", "east"]);
    await whereamiIn("east", ns, "routed");
    await exportFrom("east", ns, "routed");
    await whereamiIn("east", ns, "direct");
    await exportFrom("east", ns, "direct", undefined, { exportedAnnotations: { [ANNOTATION_MODE]: "flat" } });
    const west = await eventually("west's gateway routing to east", async () => {
      const r = (await routingIn(ns)).find((x) => x.cluster === "west" && x.name === "routed");
      return r?.targets.some((t) => t.clusterId === "east" && t.sharePercent === 100) ? r : undefined;
    });
    assert.equal(west.port, PORT);
    const table = await meridian(["status"], { stateDir: cs.stateDir });
    assert.match(table.stdout, new RegExp(`west\\s+${ns}/routed\\s+${PORT}\\s+east 100%`));
    // The flat import exists, with east's pod addresses, but no gateway serves it.
    await eventually("the flat import in west", async () => {
      const si = await cs.client("west").read({
        apiVersion: MCS_API_VERSION,
        kind: "ServiceImport",
        metadata: { name: "direct", namespace: ns },
      });
      return si?.metadata?.annotations?.[ANNOTATION_MODE] === "flat" ? true : undefined;
    });
    assert.equal((await routingIn(ns)).filter((r) => r.name === "direct").length, 0);
  });

  it("runs every member's gateway with the gateway's V8 flags", () => {
    for (const member of ["west", "east", "north"]) {
      const pid = readProcessRecord(cs.paths.pidFile(`${member}-gateway`))!.pid;
      const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
      const script = argv.findIndex((a) => a.endsWith("bin/meridian.js"));
      assert.ok(script > 0, `${member}'s gateway: ${argv.join(" ")}`);
      assert.deepEqual(argv.slice(1, script), GATEWAY_NODE_FLAGS, `${member}'s gateway: ${argv.join(" ")}`);
    }
  });

  it("routes around a dead gateway within the bound, and back once it returns", async () => {
    const ns = await servedByEastAndNorth("gwdeath");
    const pid = readProcessRecord(cs.paths.pidFile("east-gateway"))!.pid;
    process.kill(pid, "SIGKILL");
    const killed = Date.now();
    // Every request must still be answered: by north, once west's gateway has noticed.
    await onlyNorthAnswers(ns, "gwdeath");
    const outage = Date.now() - killed;
    process.stdout.write(`# east's gateway killed: west routes only to north ${outage} ms later\n`);
    assert.ok(outage < 15_000, `took ${outage} ms`);
    const up = await meridian(["up"], { stateDir: cs.stateDir, timeoutMs: 120_000 });
    assert.equal(up.code, 0, up.stderr);
    await eventually("east answers again", async () =>
      (await answersFrom("west", ns, "gwdeath", 12)).includes("east") ? true : undefined,
    );
  });

  it("in a member whose gateway is a Service, imported slices point at the gateway on allocated ports, which it serves", async () => {
    const ns = await testNamespace(cs, ["west", "east"]);
    await whereamiIn("east", ns, "viagw", true);
    await exportFrom("east", ns, "viagw");
    const west = cs.client("west");
    const nodeAddress = cs.record.clusters.find((c) => c.name === "west")!.network!.nodeAddress;
    // What a gateway Deployment's Service looks like to the controller: ready endpoints in
    // meridian-system/meridian-gateway. Here they are west's own gateway process.
    await west.core.createNamespacedService({
      namespace: "meridian-system",
      body: { metadata: { name: "meridian-gateway" }, spec: { ports: [{ name: "peer-mtls", port: 15443 }] } },
    });
    await west.discovery.createNamespacedEndpointSlice({
      namespace: "meridian-system",
      body: {
        metadata: {
          name: "meridian-gateway-local",
          labels: { "kubernetes.io/service-name": "meridian-gateway" },
        },
        addressType: "IPv4",
        endpoints: [{ addresses: [nodeAddress], conditions: { ready: true } }],
        ports: [{ name: "peer-mtls", port: 15443, protocol: "TCP" }],
      },
    });
    try {
      const slice = await eventually("west's slice for east to point at west's gateway", async () => {
        const list = await west.discovery.listNamespacedEndpointSlice({
          namespace: ns,
          labelSelector: "multicluster.kubernetes.io/service-name=viagw",
        });
        const s = list.items.find(
          (x) => x.metadata?.labels?.["multicluster.kubernetes.io/source-cluster"] === "east",
        );
        return s?.endpoints?.[0]?.addresses[0] === nodeAddress ? s : undefined;
      });
      const portOf = (protocol: string): number =>
        slice.ports!.find((p) => (p.protocol ?? "TCP") === protocol)!.port!;
      const [listenPort, udpListenPort] = [portOf("TCP"), portOf("UDP")];
      for (const p of [listenPort, udpListenPort]) assert.ok(p >= 20000 && p <= 29999, String(p));
      const si = await west.read({
        apiVersion: MCS_API_VERSION,
        kind: "ServiceImport",
        metadata: { name: "viagw", namespace: ns },
      });
      assert.equal(
        si?.metadata?.annotations?.["gateway.meridian.dev/listen-ports"],
        `datagrams/UDP=${udpListenPort},http/TCP=${listenPort}`,
      );
      // A client following the slice, as kube-proxy would, reaches east through the gateway.
      const answer = await eventually("an answer on the slice's endpoint", async () => {
        const res = await meridian(
          ["exec", "west", "--", "curl", "-s", "-m", "3", `http://${nodeAddress}:${listenPort}/`],
          { stateDir: cs.stateDir },
        );
        return res.code === 0 ? (JSON.parse(res.stdout) as { cluster: string }) : undefined;
      });
      assert.equal(answer.cluster, "east");
      // And a UDP client following the slice's UDP port: the gateway serves the datagrams there.
      const udp = await eventually("a UDP answer on the slice's endpoint", () =>
        udpAnswerIn("west", nodeAddress, udpListenPort),
      );
      assert.equal(udp.cluster, "east");
    } finally {
      await west.discovery.deleteNamespacedEndpointSlice({
        name: "meridian-gateway-local",
        namespace: "meridian-system",
      });
      await west.core.deleteNamespacedService({ name: "meridian-gateway", namespace: "meridian-system" });
    }
    // Without the gateway Service, west's slices carry east's pods again.
    await eventually("pod slices back in west", async () => {
      const list = await west.discovery.listNamespacedEndpointSlice({
        namespace: ns,
        labelSelector: "multicluster.kubernetes.io/service-name=viagw",
      });
      return list.items.some((x) => x.endpoints?.[0]?.addresses[0]?.startsWith("10.244.2."))
        ? true
        : undefined;
    });
  });

  it("follows a TrafficPolicy: weights within a tolerance, then failover tiers", async () => {
    const ns = await servedByEastAndNorth("shaped");
    const policy = (spec: object) =>
      cs.client("west").apply({
        apiVersion: "meridian.dev/v1alpha1",
        kind: "TrafficPolicy",
        metadata: { name: "shaped", namespace: ns },
        spec: { serviceRef: { name: "shaped" }, ...spec },
      } as KubernetesObject);
    const tally = async (n: number): Promise<Map<string, number>> => {
      const counts = new Map<string, number>();
      for (const who of await answersFrom("west", ns, "shaped", n))
        counts.set(who, (counts.get(who) ?? 0) + 1);
      return counts;
    };
    await policy({
      locality: "None",
      weights: [
        { cluster: "east", weight: 3 },
        { cluster: "north", weight: 1 },
      ],
    });
    await eventually("west's gateway to apply the weights", async () => {
      const r = (await routingIn(ns)).find((x) => x.cluster === "west" && x.name === "shaped");
      return r?.targets.find((t) => t.clusterId === "east")?.sharePercent === 75 ? true : undefined;
    });
    const counts = await tally(40);
    assert.equal(counts.get("failed"), undefined);
    // Smooth weighted round robin: 30 and 10 exactly when nothing else shares the gateway.
    assert.ok(Math.abs((counts.get("east") ?? 0) - 30) <= 4, JSON.stringify([...counts]));
    await policy({ failover: [{ clusters: [{ cluster: "north" }] }, { clusters: [{ cluster: "east" }] }] });
    await eventually("north's tier first", async () => {
      const r = (await routingIn(ns)).find((x) => x.cluster === "west" && x.name === "shaped");
      return r?.targets.find((t) => t.clusterId === "north")?.sharePercent === 100 ? true : undefined;
    });
    assert.deepEqual([...(await tally(10))], [["north", 10]]);
    await cs.client("north").core.deleteNamespacedPod({ name: "shaped-north", namespace: ns });
    await eventually("east's tier once north has no endpoint", async () =>
      [...(await tally(5))].every(([who]) => who === "east") ? true : undefined,
    );
  });
});
