/**
 * The dashboard's cost per update at scale: how long building the view takes (the pure model,
 * reachability from every member included) and how many bytes each push sends, for N members × M
 * services each, every service imported by every member. Synthetic observations: this measures
 * the model, not the API servers. Writes bench/results/dashboard.json.
 *
 *   node --import tsx bench/dashboard.ts [--members 10] [--services 100,1000] [--runs 7]
 */
import { writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import type { V1EndpointSlice } from "@kubernetes/client-node";
import type { Cluster } from "../src/api/meridian.js";
import type { ServiceExport, ServiceImport } from "../src/api/mcs.js";
import { dashboardView, type ObservedMember } from "../src/dashboard/model.js";
import { flowGraph, layoutGraph } from "../src/dashboard/web/graph.js";

const { values } = parseArgs({
  options: {
    members: { type: "string", default: "10" },
    services: { type: "string", default: "100,1000" },
    runs: { type: "string", default: "7" },
  },
});

function observed(memberCount: number, servicesPerMember: number): ObservedMember[] {
  const names = Array.from({ length: memberCount }, (_, i) => `cluster-${i}`);
  const ns = (s: number) => `team-${s % 10}`;
  return names.map((name): ObservedMember => {
    const exports: ServiceExport[] = [];
    for (let s = 0; s < servicesPerMember; s++) {
      exports.push({
        metadata: { name: `svc-${name}-${s}`, namespace: ns(s) },
        status: {
          conditions: [
            { type: "Valid", status: "True", reason: "Valid", message: "", lastTransitionTime: new Date() },
            {
              type: "Ready",
              status: "True",
              reason: "Exported",
              message: "",
              lastTransitionTime: new Date(),
            },
          ],
        },
      });
    }
    const imports: ServiceImport[] = [];
    const slices: V1EndpointSlice[] = [];
    for (const other of names) {
      for (let s = 0; s < servicesPerMember; s++) {
        const svc = `svc-${other}-${s}`;
        imports.push({
          metadata: { name: svc, namespace: ns(s) },
          spec: { type: "ClusterSetIP", ips: ["10.96.0.1"], ports: [{ port: 80, protocol: "TCP" }] },
          status: { clusters: [{ cluster: other }] },
        });
        slices.push({
          addressType: "IPv4",
          metadata: {
            name: `${svc}-${other}`,
            namespace: ns(s),
            labels: {
              "multicluster.kubernetes.io/service-name": svc,
              "multicluster.kubernetes.io/source-cluster": other,
            },
          },
          endpoints: [{ addresses: ["10.0.0.1"], conditions: { ready: true } }],
        });
      }
    }
    const cluster: Cluster = {
      metadata: { name },
      spec: { clusterID: name, credentials: { secretName: `${name}-kubeconfig` } },
      status: {
        conditions: [
          { type: "Ready", status: "True", reason: "Ready", message: "", lastTransitionTime: new Date() },
        ],
      },
    };
    return {
      name,
      cluster,
      connection: { state: "connected" },
      exports,
      imports,
      slices,
      policies: [],
      namespaces: Array.from({ length: 10 }, (_, i) => `team-${i}`),
    };
  });
}

const percentile = (xs: number[], p: number) =>
  [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) * p)]!;

const members = Number(values.members);
const runs = Number(values.runs);
const results = values.services.split(",").map((v) => {
  const perMember = Number(v);
  const input = observed(members, perMember);
  const viewMs: number[] = [];
  const graphMs: number[] = [];
  let bytes = 0;
  let graphNodes = 0;
  for (let i = 0; i < runs; i++) {
    let t = performance.now();
    const view = dashboardView({
      now: new Date(),
      hub: { reachable: true, namespace: "meridian-system" },
      members: input,
    });
    bytes = JSON.stringify(view).length;
    viewMs.push(performance.now() - t);
    t = performance.now();
    const layout = layoutGraph(flowGraph(view, { maxServiceNodes: 40, expanded: new Set(), filter: "" }));
    graphMs.push(performance.now() - t);
    graphNodes = layout.nodes.length;
  }
  // The first run warms the JIT; report the rest.
  const warm = (xs: number[]) => xs.slice(1);
  return {
    members,
    servicesPerMember: perMember,
    services: members * perMember,
    viewMsP50: Math.round(percentile(warm(viewMs), 0.5)),
    viewMsMax: Math.round(Math.max(...warm(viewMs))),
    graphLayoutMsP50: Math.round(percentile(warm(graphMs), 0.5) * 10) / 10,
    graphNodes,
    pushBytes: bytes,
  };
});

const out = {
  benchmark: "dashboard",
  date: new Date().toISOString(),
  machine: { cpus: os.cpus().length, node: process.version },
  runs,
  results,
};
writeFileSync(
  path.join(import.meta.dirname, "results", "dashboard.json"),
  `${JSON.stringify(out, null, 2)}\n`,
);
console.log("members × services   view build p50 (max)   graph layout p50   graph nodes   push size");
for (const r of results)
  console.log(
    `${r.members} × ${r.servicesPerMember}`.padEnd(21) +
      `${r.viewMsP50} ms (${r.viewMsMax} ms)`.padEnd(23) +
      `${r.graphLayoutMsP50} ms`.padEnd(19) +
      `${r.graphNodes}`.padEnd(14) +
      `${(r.pushBytes / 1e6).toFixed(2)} MB`,
  );
