import assert from "node:assert/strict";
import type https from "node:https";
import { describe, it } from "node:test";
import { renderKubeconfig } from "./kubeconfig.js";
import { credentialsFromKubeconfig } from "./credentials.js";

const apply = async (
  text: string,
  context?: string,
): Promise<{ server: string; opts: https.RequestOptions }> => {
  const c = await credentialsFromKubeconfig(text, context);
  const opts: https.RequestOptions = { headers: { Accept: "application/json" } };
  await c.applyToHTTPSOptions(opts);
  return { server: c.server, opts };
};

describe("credentialsFromKubeconfig", () => {
  const kubeconfig = renderKubeconfig(
    [
      {
        name: "hub",
        server: "https://127.0.0.1:1",
        caData: "CA1",
        clientCertData: "CERT",
        clientKeyData: "KEY",
      },
      { name: "west", server: "https://127.0.0.1:2", caData: "CA2", token: "sekrit" },
    ],
    "hub",
  );

  it("uses the current context, with client certificates", async () => {
    const { server, opts } = await apply(kubeconfig);
    assert.equal(server, "https://127.0.0.1:1");
    assert.equal((opts.ca as Buffer).toString(), "CA1");
    assert.equal((opts.cert as Buffer).toString(), "CERT");
    assert.equal((opts.key as Buffer).toString(), "KEY");
    assert.equal((opts.headers as Record<string, string>)["Authorization"], undefined);
  });

  it("uses a named context, with a bearer token, keeping other headers", async () => {
    const { server, opts } = await apply(kubeconfig, "west");
    assert.equal(server, "https://127.0.0.1:2");
    assert.deepEqual(opts.headers, { Accept: "application/json", Authorization: "Bearer sekrit" });
  });

  it("says which context or server is missing", async () => {
    await assert.rejects(credentialsFromKubeconfig(kubeconfig, "east"), /no context "east"/);
    const noServer = kubeconfig.replace("server: https://127.0.0.1:1", "server: null");
    await assert.rejects(credentialsFromKubeconfig(noServer), /cluster "hub" has no server/);
  });

  it("hands exec plugins to client-node", async () => {
    const exec = `apiVersion: v1
kind: Config
current-context: x
clusters: [{ name: x, cluster: { server: "https://127.0.0.1:3" } }]
users: [{ name: u, user: { exec: { apiVersion: client.authentication.k8s.io/v1, command: /bin/echo, args: ['{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"from-exec"}}'], interactiveMode: Never } } }]
contexts: [{ name: x, context: { cluster: x, user: u } }]
`;
    const { opts } = await apply(exec);
    assert.equal((opts.headers as Record<string, string>)["Authorization"], "Bearer from-exec");
  });
});
