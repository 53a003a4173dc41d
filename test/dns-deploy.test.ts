/**
 * The real-cluster manifests of the DNS server (deploy/dns/*.yaml) are accepted by a real API
 * server: every object is applied server-side with dryRun=All to a member of the clusterset.
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { after, describe, test } from "node:test";
import type { KubernetesObject } from "@kubernetes/client-node";
import { parseAllDocuments } from "yaml";
import { apiErrorMessage } from "../src/kube/client.js";
import { REPO_ROOT } from "../src/local/binaries.js";
import { clusterset } from "./harness.js";

const DIR = path.join(REPO_ROOT, "deploy", "dns");

function manifests(): { file: string; object: KubernetesObject }[] {
  const out: { file: string; object: KubernetesObject }[] = [];
  for (const file of readdirSync(DIR)
    .filter((f) => f.endsWith(".yaml"))
    .sort()) {
    for (const doc of parseAllDocuments(readFileSync(path.join(DIR, file), "utf8"))) {
      if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors[0]!.message}`);
      const object = doc.toJS() as KubernetesObject | null;
      if (object) out.push({ file, object });
    }
  }
  return out;
}

describe("deploy/dns manifests", async () => {
  const cs = await clusterset();
  const member = cs.members[0]!;
  const client = cs.client(member);
  const objects = manifests();

  test("contain the ServiceAccount, least-privilege ClusterRole, Deployment and Service", () => {
    const kinds = objects.map((o) => o.object.kind).sort();
    for (const kind of ["ClusterRole", "ClusterRoleBinding", "Deployment", "Service", "ServiceAccount"]) {
      assert.ok(kinds.includes(kind), `deploy/dns has no ${kind} (has ${kinds.join(", ")})`);
    }
    const role = objects.find((o) => o.object.kind === "ClusterRole")!.object as unknown as {
      rules: { resources: string[]; verbs: string[] }[];
    };
    assert.deepEqual(role.rules.flatMap((r) => r.resources).sort(), [
      "endpointslices",
      "namespaces",
      "serviceimports",
    ]);
    for (const rule of role.rules) assert.deepEqual([...rule.verbs].sort(), ["list", "watch"]);
  });

  test("every object passes a server-side dry-run apply", async () => {
    // Namespaced objects can only be dry-run into a namespace that exists. The member already has
    // meridian-system (from `meridian join`); only a namespace this test creates is deleted after.
    const namespace = objects.find((o) => o.object.kind === "Namespace")?.object;
    if (
      namespace &&
      !(await client.read({
        apiVersion: "v1",
        kind: "Namespace",
        metadata: { name: namespace.metadata!.name! },
      }))
    ) {
      await client.apply(namespace, "dns-deploy-test");
      after(() => client.deleteIfExists(namespace));
    }
    for (const { file, object } of objects) {
      const what = `${file}: ${object.kind} ${object.metadata?.namespace ?? ""}/${object.metadata?.name ?? ""}`;
      try {
        await client.apply(object, "dns-deploy-test", true);
      } catch (error) {
        assert.fail(`${what} was rejected by ${member}'s API server: ${apiErrorMessage(error)}`);
      }
    }
  });
});
