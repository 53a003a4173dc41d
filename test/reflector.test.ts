/**
 * The watch layer against a real API server: it survives the server dying, resumes, and relists
 * when its resourceVersion has been compacted away (410 Gone), ending with exactly the server's
 * objects.
 */
import assert from "node:assert/strict";
import http from "node:http";
import { describe, it } from "node:test";
import type { KubernetesObject } from "@kubernetes/client-node";
import { Reflector, type ReflectorLifecycle } from "../src/kube/reflector.js";
import { RestClient } from "../src/kube/rest.js";
import { up } from "../src/local/clusterset.js";
import { readProcessRecord } from "../src/local/processes.js";
import { eventually, privateClusterset } from "./harness.js";

const cs = await privateClusterset(1, []);
const configMaps = { group: "", version: "v1", plural: "configmaps", namespaced: true };

function etcdPost(path: string, body: object): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: "127.0.0.1", port: cs.record.etcd.clientPort, path, method: "POST" },
      (res) => {
        let text = "";
        res.on("data", (d: Buffer) => (text += d.toString()));
        res.on("end", () => resolve(JSON.parse(text) as Record<string, unknown>));
      },
    );
    req.on("error", reject);
    req.end(JSON.stringify(body));
  });
}

describe("the reflector", () => {
  it("survives an API server restart and relists after its resourceVersion is compacted away", async () => {
    const client = cs.client("west");
    await client.core.createNamespace({ body: { metadata: { name: "refl" } } });
    for (const name of ["a", "b"])
      await client.core.createNamespacedConfigMap({ namespace: "refl", body: { metadata: { name } } });

    const lifecycle: ReflectorLifecycle[] = [];
    const reflector = new Reflector<KubernetesObject>(new RestClient("west", client.kubeConfig), configMaps, {
      namespace: "refl",
      onLifecycle: (e) => lifecycle.push(e),
      backoff: { initialMs: 200, maxMs: 1000 },
    }).start();
    try {
      await reflector.waitForSync();
      assert.deepEqual(
        reflector
          .list()
          .map((o) => o.metadata!.name)
          .sort(),
        ["a", "b"],
      );
      // Listed items carry no apiVersion/kind on the wire; the cache must have them (the applier
      // deletes cached objects by kind).
      assert.ok(reflector.list().every((o) => o.apiVersion === "v1" && o.kind === "ConfigMap"));

      process.kill(readProcessRecord(cs.paths.pidFile("west-kube-apiserver"))!.pid, "SIGKILL");
      await eventually("the watch to fail", () =>
        lifecycle.some((e) => e.kind === "watch-error") ? true : undefined,
      );
      // Compact etcd at its current revision: the reflector's resourceVersion is now history.
      // A write outside every cluster's prefix moves etcd past the reflector's resourceVersion.
      const put = await etcdPost("/v3/kv/put", {
        key: Buffer.from("/meridian-test/tick").toString("base64"),
        value: "",
      });
      const revision = (put["header"] as { revision: string }).revision;
      await etcdPost("/v3/kv/compaction", { revision, physical: true });

      await up({ stateDir: cs.stateDir });
      await client.core.deleteNamespacedConfigMap({ name: "a", namespace: "refl" });
      await client.core.createNamespacedConfigMap({ namespace: "refl", body: { metadata: { name: "c" } } });

      await eventually(
        "the cache to match the server",
        () => {
          const names = reflector
            .list()
            .map((o) => o.metadata!.name)
            .sort()
            .join();
          return names === "b,c" ? true : undefined;
        },
        30_000,
      );
      assert.ok(
        lifecycle.some((e) => e.kind === "relist" && e.reason === "gone") ||
          lifecycle.filter((e) => e.kind === "listed").length >= 2,
        `a relist after the compaction: ${JSON.stringify(lifecycle.map((e) => e.kind + ("reason" in e ? `:${e.reason}` : "")))}`,
      );
    } finally {
      await reflector.stop();
    }
  });
});
