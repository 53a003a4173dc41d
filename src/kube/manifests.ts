/** Reading and applying YAML manifests (CRDs, RBAC, Deployments). */
import { readFileSync, readdirSync } from "node:fs";
import path from "node:path";
import type { KubernetesObject } from "@kubernetes/client-node";
import { parseAllDocuments } from "yaml";
import { setTimeout as sleep } from "node:timers/promises";
import type { ClusterClient } from "./client.js";

export function parseManifests(text: string, source: string): KubernetesObject[] {
  const objects: KubernetesObject[] = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length > 0) throw new Error(`${source}: ${doc.errors[0]?.message ?? "invalid YAML"}`);
    const value = doc.toJS({ maxAliasCount: 100 }) as unknown;
    if (value === null || value === undefined) continue;
    const obj = value as KubernetesObject;
    if (!obj.apiVersion || !obj.kind || !obj.metadata?.name) {
      throw new Error(`${source}: every document needs apiVersion, kind and metadata.name`);
    }
    objects.push(obj);
  }
  return objects;
}

export function loadManifestFiles(files: string[]): KubernetesObject[] {
  return files.flatMap((file) => parseManifests(readFileSync(file, "utf8"), file));
}

export function yamlFilesIn(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith(".yaml") || f.endsWith(".yml"))
    .sort()
    .map((f) => path.join(dir, f));
}

/** Applies CRDs and waits until each is Established, so objects of their kinds can be created. */
export async function applyCrds(
  client: ClusterClient,
  crds: KubernetesObject[],
  timeoutMs = 30_000,
): Promise<void> {
  await Promise.all(crds.map((crd) => client.apply(crd)));
  const deadline = Date.now() + timeoutMs;
  for (const crd of crds) {
    for (;;) {
      const current = await client.read<
        KubernetesObject & { status?: { conditions?: { type: string; status: string }[] } }
      >({
        apiVersion: "apiextensions.k8s.io/v1",
        kind: "CustomResourceDefinition",
        metadata: { name: crd.metadata!.name! },
      });
      if (current?.status?.conditions?.some((c) => c.type === "Established" && c.status === "True")) break;
      if (Date.now() > deadline)
        throw new Error(
          `CRD ${crd.metadata!.name!} in ${client.name} was not Established within ${timeoutMs / 1000}s`,
        );
      await sleep(50);
    }
  }
}
