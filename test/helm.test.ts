/**
 * The Helm chart deploy/helm/meridian, as a user installs it: for its defaults and every documented
 * example value set, `helm template` renders objects that a real API server accepts (server-side
 * apply, dryRun=All: the hub for the hub role, a member for the member role); `helm lint` passes;
 * bad values are refused with a message that says what to do; RBAC stays least-privilege; the
 * plain manifests in deploy/ are exactly the chart's rendering; and each component's image runs a
 * `meridian` subcommand that accepts every flag the chart gives it.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import type { KubernetesObject } from "@kubernetes/client-node";
import { parse } from "yaml";
import { GATEWAY_NODE_FLAGS } from "../src/gateway/node-flags.js";
import { credentialsFromFile } from "../src/kube/credentials.js";
import { RestClient, resourcePath, type ResourceRef } from "../src/kube/rest.js";
import { loadManifestFiles, parseManifests, yamlFilesIn } from "../src/kube/manifests.js";
import { REPO_ROOT, requireHelm } from "../src/local/binaries.js";
import { clusterset, uniqueName } from "./harness.js";

const CHART = path.join(REPO_ROOT, "deploy", "helm", "meridian");
const EXAMPLES = path.join(CHART, "examples");
const NAMESPACE = "meridian-system";
const HELM = requireHelm();

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[]): Run {
  const r = spawnSync(cmd, args, { cwd: REPO_ROOT, encoding: "utf8", timeout: 60_000 });
  if (r.error) throw r.error;
  return { code: r.status ?? 1, stdout: r.stdout, stderr: r.stderr };
}

/** `helm template` with a values file (or none) and --set pairs; the run, not yet checked. */
function helmTemplate(valuesFile: string | undefined, set: string[] = [], namespace = NAMESPACE): Run {
  const args = ["template", "meridian", CHART, "--namespace", namespace];
  if (valuesFile) args.push("--values", valuesFile);
  for (const s of set) args.push("--set", s);
  return run(HELM, args);
}

function render(valuesFile: string | undefined, set: string[] = []): KubernetesObject[] {
  const r = helmTemplate(valuesFile, set);
  assert.equal(r.code, 0, `helm template ${valuesFile ?? "(defaults)"} ${set.join(" ")} failed: ${r.stderr}`);
  return parseManifests(r.stdout, `helm template ${valuesFile ?? "(defaults)"}`);
}

interface ValueSet {
  name: string;
  file: string | undefined;
  role: "hub" | "member";
}

const valueSets: ValueSet[] = [
  { name: "the defaults", file: undefined, role: "hub" },
  ...readdirSync(EXAMPLES)
    .filter((f) => f.endsWith(".yaml"))
    .sort()
    .map((f): ValueSet => {
      const file = path.join(EXAMPLES, f);
      const values = parse(readFileSync(file, "utf8")) as { role?: string };
      return { name: `examples/${f}`, file, role: values.role === "member" ? "member" : "hub" };
    }),
];

type Rule = { apiGroups?: string[]; resources?: string[]; resourceNames?: string[]; verbs: string[] };
const rulesOf = (o: KubernetesObject): Rule[] => (o as KubernetesObject & { rules?: Rule[] }).rules ?? [];
const named = (o: KubernetesObject): string => `${o.kind}/${o.metadata?.name ?? ""}`;

interface Container {
  name: string;
  image: string;
  args?: string[];
}
function containersOf(objects: KubernetesObject[]): Container[] {
  return objects
    .filter((o) => o.kind === "Deployment")
    .flatMap(
      (o) =>
        (o as unknown as { spec: { template: { spec: { containers: Container[] } } } }).spec.template.spec
          .containers,
    );
}

/**
 * Server-side apply with dryRun=All and fieldValidation=Strict, as `kubectl apply --server-side
 * --dry-run=server` does: a misspelt or misplaced field is an error, not silently dropped.
 */
class StrictDryRun {
  private readonly resources = new Map<string, Promise<ResourceRef[]>>();
  constructor(private readonly rest: RestClient) {}

  private async ref(obj: KubernetesObject): Promise<ResourceRef> {
    const apiVersion = obj.apiVersion!;
    const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : ["", apiVersion];
    let list = this.resources.get(apiVersion);
    if (!list) {
      list = this.rest
        .request<{ resources: { name: string; kind: string; namespaced: boolean }[] }>(
          "GET",
          group ? `/apis/${apiVersion}` : `/api/${apiVersion}`,
        )
        .then((r) =>
          r.resources
            .filter((x) => !x.name.includes("/"))
            .map((x) => ({
              group: group!,
              version: version!,
              plural: x.name,
              namespaced: x.namespaced,
              kind: x.kind,
            })),
        );
      this.resources.set(apiVersion, list);
    }
    const ref = (await list).find((r) => (r as ResourceRef & { kind: string }).kind === obj.kind);
    if (!ref) throw new Error(`the API server does not serve ${obj.kind} in ${apiVersion}`);
    return ref;
  }

  /** undefined when accepted, else the API server's message. */
  async apply(obj: KubernetesObject): Promise<string | undefined> {
    try {
      const ref = await this.ref(obj);
      await this.rest.request("PATCH", resourcePath(ref, obj.metadata?.namespace, obj.metadata!.name), {
        query: { dryRun: "All", fieldManager: "meridian-helm-test", force: true, fieldValidation: "Strict" },
        body: obj,
        contentType: "application/apply-patch+yaml",
      });
      return undefined;
    } catch (err) {
      return err instanceof Error ? err.message : String(err);
    }
  }
}

describe("the Helm chart deploy/helm/meridian", async () => {
  const cs = await clusterset();
  const target = { hub: "hub", member: cs.members[0]! };
  const dryRun = {
    hub: new StrictDryRun(new RestClient("hub", await credentialsFromFile(cs.paths.kubeconfig, target.hub))),
    member: new StrictDryRun(
      new RestClient(target.member, await credentialsFromFile(cs.paths.kubeconfig, target.member)),
    ),
  };

  it("a server-side dry-run refuses what a user's cluster would refuse (the check below can fail)", async () => {
    const [deployment] = render(undefined).filter((o) => o.kind === "Deployment");
    const misspelt = structuredClone(deployment!) as KubernetesObject & { spec: Record<string, unknown> };
    misspelt.spec["replica"] = 2;
    assert.match((await dryRun.hub.apply(misspelt)) ?? "accepted", /unknown field "spec.replica"|replica/);
    assert.equal(await dryRun.hub.apply(deployment!), undefined);
  });

  it("documents an example value set for each role, and every example says how it is installed", () => {
    assert.ok(valueSets.some((v) => v.file && v.role === "hub"));
    assert.ok(valueSets.some((v) => v.file && v.role === "member"));
    const readme = readFileSync(path.join(CHART, "README.md"), "utf8");
    for (const v of valueSets.filter((s) => s.file)) {
      const text = readFileSync(v.file!, "utf8");
      assert.match(text, /^# \S/, `${v.name} starts with a comment saying what it is for`);
      assert.match(text, /helm install /, `${v.name} shows the helm install command`);
      assert.ok(readme.includes(v.name), `the chart's README.md does not describe ${v.name}`);
    }
  });

  it("documents every value of values.yaml in README.md", () => {
    const values = parse(readFileSync(path.join(CHART, "values.yaml"), "utf8")) as Record<string, unknown>;
    // Maps the user fills in (labels, resources, ...) are one value each.
    const opaque = new Set(["commonLabels", "nodeSelector", "resources", "annotations"]);
    const keys: string[] = [];
    const walk = (obj: Record<string, unknown>, prefix: string): void => {
      for (const [k, v] of Object.entries(obj)) {
        const key = prefix + k;
        if (v && typeof v === "object" && !Array.isArray(v) && !opaque.has(k)) {
          walk(v as Record<string, unknown>, `${key}.`);
        } else keys.push(key);
      }
    };
    walk(values, "");
    assert.ok(keys.length > 30, `found only ${keys.length} values`);
    const readme = readFileSync(path.join(CHART, "README.md"), "utf8");
    const missing = keys.filter((k) => !readme.includes(`\`${k}\``));
    assert.deepEqual(missing, [], "values not described in deploy/helm/meridian/README.md");
  });

  it("passes helm lint --strict with its defaults and every example", () => {
    for (const v of valueSets) {
      const args = ["lint", "--strict", CHART, "--namespace", NAMESPACE];
      if (v.file) args.push("--values", v.file);
      const r = run(HELM, args);
      assert.equal(r.code, 0, `helm lint ${v.name}:\n${r.stdout}${r.stderr}`);
      // Lint reports a template's `fail` without failing; a value set must not trigger one.
      assert.doesNotMatch(r.stdout + r.stderr, /funcMap fail|\[ERROR\]|\[WARNING\]/, `helm lint ${v.name}`);
    }
  });

  for (const v of valueSets) {
    it(`${v.name} (${v.role} role): every object passes a server-side dry-run in the ${v.role}`, async () => {
      const objects = render(v.file);
      const kinds = new Set(objects.map(named));
      if (v.role === "hub")
        assert.ok(kinds.has("Deployment/meridian-controller"), "the hub runs the controller");
      else
        assert.ok(
          [...kinds].some((k) => k.startsWith("Deployment/")),
          "a member runs DNS, the gateway, or both",
        );
      for (const obj of objects) {
        const err = await dryRun[v.role].apply(obj);
        assert.equal(err, undefined, `${v.name}: ${named(obj)} was rejected by ${target[v.role]}: ${err}`);
      }
    });
  }

  it("the dashboard is on by default, read-only, behind a ClusterIP Service, and can be turned off", () => {
    const objects = render(undefined);
    const deployment = objects.find((o) => named(o) === "Deployment/meridian-dashboard");
    assert.ok(deployment, "no dashboard Deployment with the defaults");
    const [container] = containersOf([deployment]);
    assert.deepEqual(container!.args, ["--listen=0.0.0.0:8080", `--namespace=${NAMESPACE}`]);
    const service = objects.find((o) => named(o) === "Service/meridian-dashboard") as KubernetesObject & {
      spec: { type: string; ports: { port: number }[] };
    };
    assert.equal(service.spec.type, "ClusterIP");
    assert.equal(service.spec.ports[0]!.port, 8080);
    const role = objects.find((o) => named(o) === "Role/meridian-dashboard")!;
    assert.deepEqual(
      rulesOf(role).map((r) => [r.resources, r.verbs]),
      [
        [["clusters"], ["get", "list", "watch"]],
        [["secrets"], ["get"]],
        [["configmaps"], ["get"]],
      ],
    );
    assert.deepEqual(
      rulesOf(role)[2]!.resourceNames,
      ["meridian-controller-stats"],
      "only the controller's report",
    );
    const off = render(undefined, ["dashboard.enabled=false"]);
    assert.deepEqual(
      off.filter((o) => o.metadata?.name === "meridian-dashboard").map(named),
      [],
      "dashboard.enabled=false still renders dashboard objects",
    );
  });

  it("sets the gateway pods' tcp_notsent_lowat only when asked, and a member's API server accepts it", async () => {
    const member = path.join(EXAMPLES, "member.yaml");
    type PodDeployment = KubernetesObject & {
      spec: { template: { spec: { securityContext?: { sysctls?: { name: string; value: string }[] } } } };
    };
    const sysctlsOf = (objects: KubernetesObject[], name: string) =>
      (objects.find((o) => named(o) === `Deployment/${name}`) as PodDeployment).spec.template.spec
        .securityContext?.sysctls;
    const defaults = render(member);
    for (const component of ["meridian-gateway", "meridian-dns"])
      assert.equal(sysctlsOf(defaults, component), undefined, `${component} sets a sysctl by default`);
    const tuned = render(member, ["gateway.tcpNotsentLowat=16384"]);
    assert.deepEqual(sysctlsOf(tuned, "meridian-gateway"), [
      { name: "net.ipv4.tcp_notsent_lowat", value: "16384" },
    ]);
    assert.equal(sysctlsOf(tuned, "meridian-dns"), undefined, "only the gateway's pods are tuned");
    const gateway = tuned.find((o) => named(o) === "Deployment/meridian-gateway")!;
    assert.equal(await dryRun.member.apply(gateway), undefined);
    assert.match(helmTemplate(member, ["gateway.tcpNotsentLowat=-1"]).stderr, /tcpNotsentLowat.*minimum/);
  });

  it("spreads the gateway's, DNS's and controller's replicas over nodes and zones, counting only their own pods", async () => {
    type Spread = { topologyKey: string; whenUnsatisfiable: string; labelSelector: { matchLabels: object } };
    type SpreadDeployment = KubernetesObject & {
      spec: {
        selector: { matchLabels: object };
        template: { spec: { topologySpreadConstraints?: Spread[] } };
      };
    };
    const roles = { member: render(path.join(EXAMPLES, "member.yaml")), hub: render(undefined) };
    const deployments = [
      ["member", "meridian-gateway"],
      ["member", "meridian-dns"],
      ["hub", "meridian-controller"],
    ] as const;
    for (const [role, name] of deployments) {
      const deployment = roles[role].find((o) => named(o) === `Deployment/${name}`) as SpreadDeployment;
      const spread = deployment.spec.template.spec.topologySpreadConstraints ?? [];
      assert.deepEqual(
        spread.map((c) => c.topologyKey),
        ["kubernetes.io/hostname", "topology.kubernetes.io/zone"],
        `${name} does not spread over nodes and zones`,
      );
      for (const c of spread) {
        // A selector that matched no pod of its own would spread nothing.
        assert.deepEqual(c.labelSelector.matchLabels, deployment.spec.selector.matchLabels, name);
        // A rule would leave replicas unscheduled on a cluster with fewer nodes than replicas.
        assert.equal(c.whenUnsatisfiable, "ScheduleAnyway", name);
      }
      assert.equal(await dryRun[role].apply(deployment), undefined, `${name} refused by the ${role}`);
    }
  });

  it("keeps RBAC least-privilege: nothing cluster-wide in the hub, Secrets only read one by one, members only read cluster-wide", () => {
    const readOnly = new Set(["get", "list", "watch"]);
    for (const v of valueSets) {
      const objects = render(v.file);
      const rbac = objects.filter((o) => ["Role", "ClusterRole"].includes(o.kind ?? ""));
      assert.ok(rbac.length > 0, `${v.name} renders no RBAC`);
      for (const o of rbac) {
        for (const rule of rulesOf(o)) {
          const what = `${v.name}: ${named(o)} rule ${JSON.stringify(rule)}`;
          assert.ok(!rule.verbs.includes("*") && !(rule.resources ?? []).includes("*"), `${what}: wildcard`);
          if ((rule.resources ?? []).includes("secrets")) {
            assert.equal(v.role, "hub", `${what}: a member reads no Secrets`);
            assert.deepEqual(rule.verbs, ["get"], `${what}: Secrets are read one by one, never listed`);
          }
        }
      }
      if (v.role === "hub") {
        assert.deepEqual(
          objects.filter((o) => o.kind?.startsWith("Cluster") && o.kind !== "Cluster").map(named),
          [],
          `${v.name}: no cluster-wide permissions in the hub`,
        );
      } else {
        for (const o of rbac.filter((r) => r.kind === "ClusterRole")) {
          for (const rule of rulesOf(o)) {
            assert.ok(
              rule.verbs.every((verb) => readOnly.has(verb)),
              `${v.name}: ${named(o)} writes cluster-wide: ${JSON.stringify(rule)}`,
            );
          }
        }
        // The only writes: the gateway's and the DNS server's ConfigMaps in their own namespace.
        for (const o of rbac.filter((r) => r.kind === "Role")) {
          assert.equal(o.metadata?.namespace, NAMESPACE);
          for (const rule of rulesOf(o).filter((r) => !r.verbs.every((verb) => readOnly.has(verb)))) {
            assert.deepEqual(
              rule.resources,
              ["configmaps"],
              `${v.name}: ${named(o)} writes ${JSON.stringify(rule.resources)}`,
            );
          }
        }
      }
    }
  });

  it("installs each role's CRDs from deploy/crds, kept on uninstall, and none with crds.install=false", () => {
    const source = new Map(
      loadManifestFiles(yamlFilesIn(path.join(REPO_ROOT, "deploy", "crds"))).map((c) => [
        c.metadata!.name!,
        c,
      ]),
    );
    const crdsOf = (objects: KubernetesObject[]) =>
      objects.filter((o) => o.kind === "CustomResourceDefinition");
    const hub = crdsOf(render(undefined));
    const member = crdsOf(render(path.join(EXAMPLES, "member.yaml")));
    assert.deepEqual(hub.map((c) => c.metadata!.name).sort(), ["clusters.meridian.dev"]);
    assert.deepEqual(member.map((c) => c.metadata!.name).sort(), [
      "clusterproperties.about.k8s.io",
      "trafficpolicies.meridian.dev",
    ]);
    for (const crd of [...hub, ...member]) {
      assert.equal(crd.metadata?.annotations?.["helm.sh/resource-policy"], "keep", named(crd));
      const want = source.get(crd.metadata.name!) as KubernetesObject & { spec: unknown };
      assert.deepEqual((crd as typeof want).spec, want.spec, `${named(crd)} differs from deploy/crds`);
    }
    assert.deepEqual(crdsOf(render(undefined, ["crds.install=false"])), []);
  });

  it("names one image per component, <image.registry>/meridian-<component>:<image.tag or appVersion>", () => {
    const chart = parse(readFileSync(path.join(CHART, "Chart.yaml"), "utf8")) as { appVersion: string };
    const all = [...render(undefined), ...render(path.join(EXAMPLES, "member.yaml"))];
    const images = containersOf(all).map((c) => [c.name, c.image]);
    assert.deepEqual(
      images.sort(),
      ["controller", "dashboard", "dns", "gateway"].map((c) => [
        c,
        `ghcr.io/meridian-dev/meridian-${c}:${chart.appVersion}`,
      ]),
    );
    const mirrored = containersOf(
      render(undefined, ["image.registry=registry.example.com/x/", "image.tag=1.2.3"]),
    );
    assert.deepEqual(
      mirrored.map((c) => c.image),
      ["registry.example.com/x/meridian-controller:1.2.3", "registry.example.com/x/meridian-dashboard:1.2.3"],
    );
    // The plain manifests name the same images.
    for (const dir of ["controller", "dashboard", "dns", "gateway"]) {
      for (const c of containersOf(loadManifestFiles(yamlFilesIn(path.join(REPO_ROOT, "deploy", dir))))) {
        assert.equal(c.image, `ghcr.io/meridian-dev/meridian-${c.name}:${chart.appVersion}`, `deploy/${dir}`);
      }
    }
  });

  it("helm install and uninstall the hub role in a real API server, as a user does", async () => {
    // Its own namespace of the hub, so the local clusterset's components are not touched. The
    // hub's CRDs were applied by `meridian up`, not by Helm: Helm refuses to adopt them, which is
    // why the docs say crds.install=false where CRDs were applied with kubectl.
    const ns = uniqueName("meridian-helm");
    const hub = cs.client("hub");
    const nsObject = { apiVersion: "v1", kind: "Namespace", metadata: { name: ns } };
    after(() => hub.deleteIfExists(nsObject));
    const helm = (...args: string[]): Run =>
      run(HELM, [...args, "--namespace", ns, "--kubeconfig", cs.paths.kubeconfig, "--kube-context", "hub"]);
    const hubValues = ["--values", path.join(EXAMPLES, "hub.yaml")];

    const adopt = helm("install", "meridian", CHART, "--dry-run=server", ...hubValues);
    assert.notEqual(adopt.code, 0);
    assert.match(
      adopt.stderr,
      /CustomResourceDefinition "clusters\.meridian\.dev" .*exists and cannot be imported/,
    );

    const install = helm(
      "install",
      "meridian",
      CHART,
      "--create-namespace",
      ...hubValues,
      "--set",
      "crds.install=false",
    );
    assert.equal(install.code, 0, install.stderr);
    assert.match(install.stdout, /STATUS: deployed/);
    assert.match(install.stdout, new RegExp(`kubectl -n ${ns} port-forward service/meridian-dashboard 8080`));
    const names = ["meridian-controller", "meridian-dashboard"];
    const deployment = (name: string) => ({
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name, namespace: ns },
    });
    for (const name of names)
      assert.ok(await hub.read(deployment(name)), `Deployment ${ns}/${name} after helm install`);

    const uninstall = helm("uninstall", "meridian");
    assert.equal(uninstall.code, 0, uninstall.stderr);
    for (const name of names) {
      assert.equal(
        await hub.read(deployment(name)),
        undefined,
        `Deployment ${ns}/${name} after helm uninstall`,
      );
    }
    const crd = {
      apiVersion: "apiextensions.k8s.io/v1",
      kind: "CustomResourceDefinition",
      metadata: { name: "clusters.meridian.dev" },
    };
    assert.ok(await hub.read(crd), "the Cluster CRD survives");
  });

  describe("refuses bad values with a message that says what to do", () => {
    const refused = (set: string[], namespace = NAMESPACE): string => {
      const r = helmTemplate(undefined, set, namespace);
      assert.notEqual(r.code, 0, `helm template --set ${set.join(" --set ")} was accepted:\n${r.stdout}`);
      return r.stderr;
    };

    it("an unknown role", () => {
      assert.match(refused(["role=edge"]), /role must be "hub" or "member" \(got "edge"\).*--set role=hub/);
    });

    it("a member gateway without clusterID or clusterset", () => {
      assert.match(refused(["role=member", "clusterset=prod"]), /needs clusterID.*--set clusterID=/);
      assert.match(refused(["role=member", "clusterID=a"]), /needs clusterset.*--set clusterset=/);
      // Without the gateway neither is needed.
      assert.equal(helmTemplate(undefined, ["role=member", "gateway.enabled=false"]).code, 0);
    });

    it("a member outside meridian-system", () => {
      assert.match(
        refused(["role=member", "clusterID=a", "clusterset=prod"], "meridian"),
        /member role must be installed in the namespace meridian-system \(got "meridian"\)/,
      );
    });

    it("several controller replicas without leader election", () => {
      assert.match(
        refused(["controller.leaderElect=false"]),
        /set controller\.leaderElect=true or controller\.replicas=1/,
      );
    });

    it("a value of the wrong type, out of range, or not one of the choices (values.schema.json)", () => {
      assert.match(refused(["dns.ttl=soon"]), /'\/dns\/ttl': got string, want integer/);
      assert.match(refused(["dashboard.enabled=yes"]), /'\/dashboard\/enabled': got string, want boolean/);
      assert.match(refused(["dns.ttl=7200"]), /'\/dns\/ttl': maximum/);
      assert.match(
        refused(["role=member", "gateway.service.type=ClusterIP"]),
        /'\/gateway\/service\/type': value must be one of 'LoadBalancer', 'NodePort'/,
      );
      assert.match(
        refused(["controller.unreachableAfter=soon"]),
        /'\/controller\/unreachableAfter': 'soon' does not match/,
      );
    });

    it("a misspelt value instead of ignoring it", () => {
      assert.match(refused(["dashbord.enabled=false"]), /additional properties 'dashbord' not allowed/);
      assert.match(
        refused(["gateway.service.nodeport=31000"]),
        /'\/gateway\/service': additional properties 'nodeport' not allowed/,
      );
    });
  });

  describe("the plain manifests in deploy/", () => {
    it("are exactly the chart's rendering (scripts/render-manifests.sh --check)", () => {
      const r = run(path.join(REPO_ROOT, "scripts", "render-manifests.sh"), ["--check"]);
      assert.equal(r.code, 0, r.stderr);
    });

    it("a hand edit is caught, naming the file and the way to fix it", () => {
      const root = mkdtempSync(path.join(os.tmpdir(), "meridian-render-"));
      after(() => rmSync(root, { recursive: true, force: true }));
      cpSync(path.join(REPO_ROOT, "deploy"), path.join(root, "deploy"), {
        recursive: true,
        verbatimSymlinks: true,
      });
      const file = path.join(root, "deploy", "gateway", "gateway.yaml");
      writeFileSync(file, readFileSync(file, "utf8").replace("replicas: 2", "replicas: 3"));
      const r = run(path.join(REPO_ROOT, "scripts", "render-manifests.sh"), ["--check", "--root", root]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /out of date with the chart: deploy\/gateway\/gateway\.yaml\n/);
      assert.match(r.stderr, /edit deploy\/helm\/meridian.*scripts\/render-manifests\.sh/);
    });
  });
});

describe("container images (deploy/images/Containerfile)", () => {
  const text = readFileSync(path.join(REPO_ROOT, "deploy", "images", "Containerfile"), "utf8");
  // Stages: FROM <base> AS <name>, and the instructions up to the next FROM.
  const stages = new Map<string, { base: string; body: string }>();
  for (const m of text.matchAll(/^FROM\s+(\S+)\s+AS\s+(\S+)\s*\n([\s\S]*?)(?=^FROM\s|(?![\s\S]))/gim)) {
    stages.set(m[2]!, { base: m[1]!, body: m[3]! });
  }
  const entrypoint = (stage: string): string[] => {
    const m = /^ENTRYPOINT\s+(\[.*\])\s*$/m.exec(stages.get(stage)?.body ?? "");
    assert.ok(m, `target ${stage} has no ENTRYPOINT in exec form`);
    return JSON.parse(m[1]!) as string[];
  };

  it("builds on a pinned Node 20 image, once, and runs every component as user 65532", () => {
    const arg = /^ARG NODE_IMAGE=(\S+)$/m.exec(text);
    assert.ok(arg, "no ARG NODE_IMAGE");
    assert.match(arg[1]!, /^docker\.io\/library\/node:20\.\d+\.\d+-[a-z]+-slim(@sha256:[0-9a-f]{64})?$/);
    assert.equal(stages.get("build")?.base, "${NODE_IMAGE}");
    assert.match(stages.get("build")!.body, /npm ci[\s\S]*npm run build && npm prune --omit=dev/);
    assert.match(stages.get("runtime")!.body, /^USER 65532:65532$/m);
    for (const c of ["controller", "dashboard", "dns", "gateway"]) {
      assert.equal(stages.get(c)?.base, "runtime", `target ${c} builds on the shared runtime stage`);
    }
  });

  // For every Deployment the chart renders (hub defaults, a member with everything on): the image's
  // entrypoint is a real `meridian` subcommand, and it knows every flag the chart passes.
  const helm = (values: string[]): KubernetesObject[] => {
    const r = run(HELM, ["template", "meridian", CHART, "--namespace", NAMESPACE, ...values]);
    assert.equal(r.code, 0, r.stderr);
    return parseManifests(r.stdout, "helm template");
  };
  const containers = containersOf([
    ...helm([]),
    ...helm([
      "--values",
      path.join(EXAMPLES, "member.yaml"),
      "--set",
      "gateway.region=r",
      "--set",
      "gateway.zone=z",
    ]),
  ]);
  const help = (sub: string[]): Run =>
    run(process.execPath, [path.join(REPO_ROOT, "bin", "meridian.js"), ...sub, "--help"]);
  const dashboardWritten = help(["dashboard"]).code === 0;

  for (const c of containers) {
    const todo =
      c.name === "dashboard" && !dashboardWritten ? "meridian dashboard is not in this tree yet" : false;
    it(`${c.name}: the image's entrypoint accepts every flag the chart passes`, { todo }, () => {
      const [node, ...rest] = entrypoint(c.name);
      const scriptAt = rest.indexOf("/app/bin/meridian.js");
      assert.equal(node, "node");
      assert.ok(scriptAt >= 0, `target ${c.name} does not run /app/bin/meridian.js`);
      const nodeFlags = rest.slice(0, scriptAt);
      const sub = rest.slice(scriptAt + 1);
      // The gateway's V8 flags are the ones the local clusterset and the benchmark use.
      assert.deepEqual(nodeFlags, c.name === "gateway" ? GATEWAY_NODE_FLAGS : []);
      const r = help(sub);
      assert.equal(r.code, 0, `meridian ${sub.join(" ")} --help: ${r.stderr}`);
      assert.match(r.stdout, new RegExp(`^Usage: meridian ${sub.join(" ")} `, "m"));
      const flags = (c.args ?? []).filter((a) => a.startsWith("--")).map((a) => a.split("=")[0]!);
      assert.ok(flags.length > 0);
      const unknown = flags.filter((f) => !new RegExp(`(^|[\\s,])${f}([\\s,]|$)`, "m").test(r.stdout));
      assert.deepEqual(unknown, [], `meridian ${sub.join(" ")} does not take these flags the chart gives it`);
    });
  }
});
