/**
 * The mcs-controller at scale: a hub and N members (real apiservers), S services exported at a
 * steady rate (some from several clusters). Measures, per (service, member), the time from
 * ServiceExport creation to a ready ServiceImport (with its ClusterSetIP) and every exporter's
 * endpoints in that member; then the time from a new ready pod to its address in every member;
 * and the controller's CPU time and memory. Writes bench/results/controller.json.
 *
 *   node --import tsx bench/controller.ts [--members 10] [--services 1000] [--rate 20] [--changes 100]
 */
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import type { KubernetesObject, V1EndpointSlice } from "@kubernetes/client-node";
import { MCS_API_VERSION, type ServiceImport } from "../src/api/mcs.js";
import { ClusterClient } from "../src/kube/client.js";
import { createStaticPod } from "../src/local/pods.js";
import { Reflector } from "../src/kube/reflector.js";
import { Resources, RestClient } from "../src/kube/rest.js";
import { down, up } from "../src/local/clusterset.js";
import { readProcessRecord } from "../src/local/processes.js";
import { StatePaths } from "../src/local/state.js";

const { values } = parseArgs({
  options: {
    members: { type: "string", default: "10" },
    services: { type: "string", default: "1000" },
    rate: { type: "string", default: "20" },
    changes: { type: "string", default: "100" },
    keep: { type: "boolean", default: false },
  },
});
const MEMBERS = Number(values.members);
const SERVICES = Number(values.services);
const RATE = Number(values.rate);
const CHANGES = Number(values.changes);
const NS = "bench";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const quantile = (xs: number[], q: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? NaN;
};
const ms = (x: number) => Math.round(x * 10) / 10;

async function pool<T>(items: T[], concurrency: number, fn: (item: T) => Promise<void>): Promise<void> {
  let i = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (i < items.length) await fn(items[i++]!);
    }),
  );
}

function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime + stime, in clock ticks of 1/100 s
}

function memoryKiB(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const get = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
  return { rss: get("VmRSS"), peak: get("VmHWM") };
}

const dir = mkdtempSync(path.join(os.tmpdir(), "meridian-bench-controller-"));
const log = (line: string) => process.stderr.write(`[bench] ${line}\n`);
try {
  log(`starting a hub and ${MEMBERS} members (controller only) in ${dir}`);
  const started = await up({ stateDir: dir, members: MEMBERS, components: ["controller"], log });
  const paths = new StatePaths(dir);
  const members = started.record.clusters.filter((c) => c.role === "member").map((c) => c.name);
  const clients = new Map(members.map((m) => [m, ClusterClient.fromFile(paths.kubeconfig, m)]));
  const controllerPid = readProcessRecord(paths.pidFile("hub-controller"))!.pid;
  await Promise.all(
    members.map((m) => clients.get(m)!.core.createNamespace({ body: { metadata: { name: NS } } })),
  );

  // Exporters: service i lives in member i % N; every 10th also in the next member.
  const services = Array.from({ length: SERVICES }, (_, i) => {
    const name = `svc-${i}`;
    const exporters = [members[i % MEMBERS]!];
    if (i % 10 === 0 && MEMBERS > 1) exporters.push(members[(i + 1) % MEMBERS]!);
    return { name, exporters };
  });
  const byName = new Map(services.map((s) => [s.name, s]));
  let podSeq = 0;
  const createPod = async (member: string, app: string): Promise<string> => {
    const n = podSeq++;
    const ip = `10.${200 + Math.floor(n / 65536)}.${Math.floor(n / 256) % 256}.${n % 256}`;
    const c = clients.get(member)!;
    const name = `${app}-${n}`;
    await createStaticPod(c, { namespace: NS, name, labels: { app }, nodeName: `${member}-node`, ip });
    return ip;
  };
  log(`creating ${SERVICES} services with one ready pod per exporter`);
  const podIPs = new Map<string, string[]>();
  await pool(services, 32, async (s) => {
    for (const m of s.exporters) {
      await clients.get(m)!.core.createNamespacedService({
        namespace: NS,
        body: {
          metadata: { name: s.name },
          spec: { selector: { app: s.name }, ports: [{ name: "http", port: 80 }] },
        },
      });
      const ip = await createPod(m, s.name);
      podIPs.set(`${m}/${s.name}`, [ip]);
    }
  });

  // Our own observers in every member: imports and MCS slices, with arrival times.
  const importedAt = new Map<string, number>(); // member/service -> time the import was ready
  const addressSeenAt = new Map<string, number>(); // member/ip -> first time seen in an MCS slice
  const readyIn = (member: string, svc: string, exporters: string[]): boolean => {
    const si = importsBy.get(member)!.get(NS, svc);
    if (!si?.spec.ips?.length) return false;
    return exporters.every((e) =>
      (podIPs.get(`${e}/${svc}`) ?? []).every((ip) => addressSeenAt.has(`${member}/${ip}`)),
    );
  };
  const exportedAt = new Map<string, number>();
  const importsBy = new Map<string, Reflector<ServiceImport & KubernetesObject>>();
  const check = (member: string, svc: string): void => {
    const key = `${member}/${svc}`;
    if (importedAt.has(key) || !exportedAt.has(svc)) return;
    const s = byName.get(svc);
    if (s && readyIn(member, svc, s.exporters)) importedAt.set(key, performance.now());
  };
  // Kubernetes' own slices of the exporters, so exports start once kube-controller-manager has
  // caught up: the figures measure Meridian, not the endpointslice controller's backlog.
  const sourceReady = new Set<string>(); // member/pod IP
  for (const m of members) {
    const rest = new RestClient(`bench-${m}`, clients.get(m)!.kubeConfig);
    new Reflector<V1EndpointSlice>(rest, Resources.endpointSlices, {
      namespace: NS,
      labelSelector: "kubernetes.io/service-name",
      onEvent: (e) => {
        for (const ep of e.object.endpoints ?? [])
          if (ep.conditions?.ready !== false) for (const a of ep.addresses) sourceReady.add(`${m}/${a}`);
      },
    }).start();
  }
  const sources = [...podIPs].flatMap(([key, ips]) => ips.map((ip) => `${key.split("/")[0]!}/${ip}`));
  const sourcesDeadline = performance.now() + 300_000;
  while (sources.some((k) => !sourceReady.has(k)) && performance.now() < sourcesDeadline) await sleep(200);
  log(
    `kube-controller-manager published ${sources.filter((k) => sourceReady.has(k)).length}/${sources.length} pods`,
  );
  for (const m of members) {
    const rest = new RestClient(`bench-${m}`, clients.get(m)!.kubeConfig);
    const imports = new Reflector<ServiceImport & KubernetesObject>(rest, Resources.serviceImports, {
      namespace: NS,
      onEvent: (e) => check(m, e.object.metadata.name!),
    });
    importsBy.set(m, imports);
    new Reflector<V1EndpointSlice>(rest, Resources.endpointSlices, {
      namespace: NS,
      labelSelector: "multicluster.kubernetes.io/service-name",
      onEvent: (e) => {
        const now = performance.now();
        for (const ep of e.object.endpoints ?? []) {
          if (ep.conditions?.ready === false) continue;
          for (const a of ep.addresses)
            if (!addressSeenAt.has(`${m}/${a}`)) addressSeenAt.set(`${m}/${a}`, now);
        }
        check(m, e.object.metadata!.labels!["multicluster.kubernetes.io/service-name"]!);
      },
    }).start();
    imports.start();
  }
  await sleep(1000);

  const cpu0 = cpuSeconds(controllerPid);
  const t0 = performance.now();
  log(`exporting ${SERVICES} services at ${RATE}/s`);
  const interval = 1000 / RATE;
  await pool(
    services.map((s, i) => ({ s, at: t0 + i * interval })),
    64,
    async ({ s, at }) => {
      const wait = at - performance.now();
      if (wait > 0) await sleep(wait);
      exportedAt.set(s.name, performance.now());
      await Promise.all(
        s.exporters.map((m) =>
          clients.get(m)!.apply({
            apiVersion: MCS_API_VERSION,
            kind: "ServiceExport",
            metadata: { name: s.name, namespace: NS },
          }),
        ),
      );
      for (const m of members) check(m, s.name);
    },
  );
  const expected = SERVICES * MEMBERS;
  const deadline = performance.now() + 120_000;
  while (importedAt.size < expected && performance.now() < deadline) await sleep(100);
  const exportLatencies = [...importedAt.entries()].map(
    ([key, t]) => t - exportedAt.get(key.split("/")[1]!)!,
  );
  const exportPhaseSeconds = (performance.now() - t0) / 1000;
  const cpu1 = cpuSeconds(controllerPid);
  const memAfterExports = memoryKiB(controllerPid);
  log(
    `exports: ${importedAt.size}/${expected} ready; p50 ${ms(quantile(exportLatencies, 0.5))} ms, p99 ${ms(quantile(exportLatencies, 0.99))} ms`,
  );

  log(`changing endpoints of ${CHANGES} services (one new ready pod each)`);
  const changeLatencies: number[] = [];
  const changed = services.slice(0, CHANGES);
  await pool(changed, 8, async (s) => {
    const exporter = s.exporters[0]!;
    const started = performance.now();
    const ip = await createPod(exporter, s.name);
    const end = performance.now() + 30_000;
    while (performance.now() < end) {
      if (members.every((m) => addressSeenAt.has(`${m}/${ip}`))) break;
      await sleep(5);
    }
    const seen = members.map((m) => addressSeenAt.get(`${m}/${ip}`));
    for (const t of seen) if (t !== undefined) changeLatencies.push(t - started);
    await sleep(interval);
  });
  const cpu2 = cpuSeconds(controllerPid);
  const mem = memoryKiB(controllerPid);
  const result = {
    benchmark: "mcs-controller",
    date: new Date().toISOString(),
    machine: {
      cpus: os.cpus().length,
      memoryGiB: Math.round(os.totalmem() / 2 ** 30),
      node: process.version,
    },
    members: MEMBERS,
    services: SERVICES,
    multiClusterServices: services.filter((s) => s.exporters.length > 1).length,
    exportRatePerSecond: RATE,
    exportToReady: {
      samples: exportLatencies.length,
      expected,
      p50ms: ms(quantile(exportLatencies, 0.5)),
      p90ms: ms(quantile(exportLatencies, 0.9)),
      p99ms: ms(quantile(exportLatencies, 0.99)),
      maxms: ms(Math.max(...exportLatencies)),
    },
    endpointChangeToReady: {
      samples: changeLatencies.length,
      expected: CHANGES * MEMBERS,
      p50ms: ms(quantile(changeLatencies, 0.5)),
      p99ms: ms(quantile(changeLatencies, 0.99)),
    },
    controller: {
      cpuSecondsDuringExports: ms(cpu1 - cpu0),
      cpuCoresDuringExports: ms((cpu1 - cpu0) / exportPhaseSeconds),
      cpuSecondsDuringChanges: ms(cpu2 - cpu1),
      rssMiB: ms(mem.rss / 1024),
      peakRssMiB: ms(mem.peak / 1024),
      rssAfterExportsMiB: ms(memAfterExports.rss / 1024),
      peakRssPerMemberMiB: ms(mem.peak / 1024 / MEMBERS),
    },
    goals: { p99ms: 500, rssPerMemberMiB: 30 },
  };
  const out = path.join(path.dirname(new URL(import.meta.url).pathname), "results", "controller.json");
  writeFileSync(out, JSON.stringify(result, null, 2) + "\n");
  console.log(JSON.stringify(result, null, 2));
  process.exitCode = 0;
} finally {
  if (!values.keep) await down(dir, true);
  setTimeout(() => process.exit(), 100).unref();
}
