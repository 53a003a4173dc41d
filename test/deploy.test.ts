/**
 * Deployable manifests are accepted by a real API server: Meridian's CRDs and the plain manifests
 * of the controller, the dashboard and the gateway (rendered from the Helm chart, see
 * test/helm.test.ts) are applied server-side with dryRun=All to the hub, and a ServiceExport,
 * ServiceImport, Cluster and ClusterProperty that a user would write are accepted or rejected as
 * documented.
 */
import assert from "node:assert/strict";
import path from "node:path";
import { describe, it } from "node:test";
import type { KubernetesObject } from "@kubernetes/client-node";
import { apiErrorMessage } from "../src/kube/client.js";
import { loadManifestFiles, yamlFilesIn } from "../src/kube/manifests.js";
import { REPO_ROOT } from "../src/local/binaries.js";
import { clusterset } from "./harness.js";

const cs = await clusterset();
const hub = cs.client("hub");

async function dryRun(obj: KubernetesObject): Promise<string | undefined> {
  try {
    await hub.apply(obj, "meridian-test", true);
    return undefined;
  } catch (err) {
    return apiErrorMessage(err);
  }
}

describe("deploy/ manifests", () => {
  for (const dir of ["crds", "controller", "dashboard", "gateway"]) {
    it(`deploy/${dir} passes server-side dry-run against the hub`, async () => {
      const objects = loadManifestFiles(yamlFilesIn(path.join(REPO_ROOT, "deploy", dir)));
      assert.ok(objects.length > 0);
      for (const obj of objects) {
        const err = await dryRun(obj);
        assert.equal(err, undefined, `${obj.kind}/${obj.metadata?.name}: ${err}`);
      }
    });
  }

  it("the controller's hub Role grants only what the controller uses, inside its namespace", () => {
    const objects = loadManifestFiles([path.join(REPO_ROOT, "deploy", "controller", "controller.yaml")]);
    const kinds = objects.map((o) => o.kind);
    assert.ok(!kinds.includes("ClusterRole"), "no cluster-wide permissions in the hub");
    const role = objects.find((o) => o.kind === "Role") as KubernetesObject & {
      rules: { resources: string[]; verbs: string[] }[];
    };
    const secrets = role.rules.find((r) => r.resources.includes("secrets"))!;
    assert.deepEqual(secrets.verbs, ["get"], "Secrets are read one by one, never listed");
  });
});

describe("Meridian's CRDs", () => {
  it("reject a Cluster without credentials, or with an invalid cluster ID, with the field named", async () => {
    const base = {
      apiVersion: "meridian.dev/v1alpha1",
      kind: "Cluster",
      metadata: { name: "bad", namespace: "meridian-system" },
    };
    const noCreds = await dryRun({ ...base, spec: { clusterID: "bad" } } as KubernetesObject);
    assert.match(noCreds ?? "", /spec\.credentials: Required value/);
    const badId = await dryRun({
      ...base,
      spec: { clusterID: "Not_Valid", credentials: { secretName: "s" } },
    } as KubernetesObject);
    assert.match(badId ?? "", /spec\.clusterID/);
    const ok = await dryRun({
      ...base,
      spec: { clusterID: "good", credentials: { secretName: "s" } },
    } as KubernetesObject);
    assert.equal(ok, undefined);
  });

  it("reject an empty ClusterProperty value", async () => {
    const err = await dryRun({
      apiVersion: "about.k8s.io/v1beta1",
      kind: "ClusterProperty",
      metadata: { name: "x.example.com" },
      spec: { value: "" },
    } as KubernetesObject);
    assert.match(err ?? "", /spec\.value/);
  });
});
