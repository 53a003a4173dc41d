import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { addressInCIDR, ipv4ToNumber, numberToIpv4, prefixLength } from "./network.js";
import { defaultPodName, parseLabels } from "./pods.js";
import { clustersetId, memberNames, resolveStateDir, UserError } from "./state.js";
import { renderTable } from "../cli/output.js";
import { renderKubeconfig } from "../kube/kubeconfig.js";
import { parse } from "yaml";

describe("addresses", () => {
  it("computes addresses inside a CIDR and rejects ones outside it", () => {
    assert.equal(addressInCIDR("10.244.3.0/24", 1), "10.244.3.1");
    assert.equal(addressInCIDR("172.31.0.0/24", 254), "172.31.0.254");
    assert.throws(() => addressInCIDR("10.244.3.0/24", 255), /outside/);
    assert.throws(() => addressInCIDR("10.244.3.0/24", 0), /outside/);
    assert.equal(prefixLength("10.0.0.0/16"), 16);
    assert.throws(() => prefixLength("10.0.0.0"), /not a CIDR/);
    assert.equal(numberToIpv4(ipv4ToNumber("255.1.2.3")), "255.1.2.3");
    assert.throws(() => ipv4ToNumber("1.2.3.256"), /not an IPv4/);
  });
});

describe("labels", () => {
  it("parses k=v lists and explains what is wrong with a bad one", () => {
    assert.deepEqual(parseLabels("app=web,tier=front,example.com/team=a"), {
      app: "web",
      tier: "front",
      "example.com/team": "a",
    });
    assert.deepEqual(parseLabels(undefined), {});
    assert.deepEqual(parseLabels("empty="), { empty: "" });
    assert.throws(
      () => parseLabels("app"),
      (e: unknown) => e instanceof UserError && /invalid label "app"/.test(e.message),
    );
    assert.throws(() => parseLabels("=x"), /invalid label/);
    assert.throws(() => parseLabels(`a=${"x".repeat(64)}`), /invalid label value/);
    assert.throws(() => parseLabels("a=b c"), /invalid label value/);
  });
});

describe("names", () => {
  it("derives pod names that are DNS labels", () => {
    assert.match(defaultPodName(["/usr/bin/Python3.11"]), /^python3-11-[0-9a-f]{5}$/);
    assert.match(defaultPodName(["___"]), /^process-[0-9a-f]{5}$/);
    assert.ok(defaultPodName(["x".repeat(100)]).length <= 63);
  });

  it("names members readably, then by number", () => {
    assert.deepEqual(memberNames(3), ["west", "east", "north"]);
    assert.equal(memberNames(12)[11], "member12");
  });

  it("gives different state dirs different clusterset ids, and the same dir the same id", () => {
    assert.equal(clustersetId("/a/b"), clustersetId("/a/b/"));
    assert.notEqual(clustersetId("/a/b"), clustersetId("/a/c"));
    assert.match(clustersetId("/x"), /^[0-9a-f]{6}$/);
  });

  it("takes the state dir from the flag, then MERIDIAN_STATE_DIR, then ./.meridian", () => {
    const saved = process.env["MERIDIAN_STATE_DIR"];
    try {
      process.env["MERIDIAN_STATE_DIR"] = "/from/env";
      assert.equal(resolveStateDir("/from/flag"), "/from/flag");
      assert.equal(resolveStateDir(), "/from/env");
      delete process.env["MERIDIAN_STATE_DIR"];
      assert.equal(resolveStateDir(), `${process.cwd()}/.meridian`);
    } finally {
      if (saved === undefined) delete process.env["MERIDIAN_STATE_DIR"];
      else process.env["MERIDIAN_STATE_DIR"] = saved;
    }
  });
});

describe("output", () => {
  it("pads table columns to the widest cell", () => {
    assert.equal(
      renderTable(
        ["A", "LONGER"],
        [
          ["xxxx", "y"],
          ["z", "w"],
        ],
      ),
      "A      LONGER\nxxxx   y\nz      w\n",
    );
  });

  it("writes a kubeconfig with one context per cluster and distinct user names", () => {
    const text = renderKubeconfig(
      [
        { name: "hub", server: "https://127.0.0.1:1", caData: "CA", clientCertData: "C", clientKeyData: "K" },
        { name: "west", server: "https://127.0.0.1:2", caData: "CA", token: "t" },
      ],
      "west",
    );
    const kc = parse(text) as {
      "current-context": string;
      contexts: { name: string; context: { cluster: string; user: string } }[];
      users: { name: string; user: Record<string, string> }[];
    };
    assert.equal(kc["current-context"], "west");
    assert.deepEqual(
      kc.contexts.map((c) => [c.name, c.context.cluster, c.context.user]),
      [
        ["hub", "hub", "hub-user"],
        ["west", "west", "west-user"],
      ],
    );
    assert.equal(kc.users[0]!.user["client-key-data"], Buffer.from("K").toString("base64"));
    assert.equal(kc.users[1]!.user["token"], "t");
  });
});
