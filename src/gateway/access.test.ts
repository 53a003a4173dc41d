import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { accessOfCluster, allowedItems, decideAccess, parseAllowedConsumers } from "./access.js";

const from = (clusterId: string, namespace?: string) => ({
  clusterset: "cs",
  clusterId,
  ...(namespace ? { namespace } : {}),
});

describe("decideAccess", () => {
  it("applies the clusterset default when the export has no list", () => {
    assert.equal(decideAccess(from("eu-1"), undefined, "allow").allowed, true);
    assert.deepEqual(decideAccess(from("eu-1"), undefined, "deny"), {
      allowed: false,
      because: "default-deny",
    });
  });

  it("allows only listed clusters when a list exists, whatever the default (story 5)", () => {
    const payments = [{ cluster: "eu-1" }, { cluster: "eu-2" }];
    assert.equal(decideAccess(from("eu-1"), payments, "deny").allowed, true);
    assert.equal(decideAccess(from("eu-2"), payments, "allow").allowed, true);
    assert.deepEqual(decideAccess(from("us-1"), payments, "allow"), {
      allowed: false,
      because: "no-matching-rule",
    });
    assert.equal(decideAccess(from("us-1"), [], "allow").allowed, false, "an empty list allows nobody");
  });

  it("matches * for every cluster", () => {
    assert.equal(decideAccess(from("any"), [{ cluster: "*" }], "deny").allowed, true);
  });

  it("narrows by namespace only for identities that carry one, failing closed otherwise", () => {
    const rule = [{ cluster: "eu-1", namespaces: ["shop"] }];
    assert.equal(decideAccess(from("eu-1", "shop"), rule, "deny").allowed, true);
    assert.equal(decideAccess(from("eu-1", "other"), rule, "deny").allowed, false);
    assert.equal(decideAccess(from("eu-1"), rule, "allow").allowed, false);
  });
});

describe("allow lists as written on a ServiceExport", () => {
  it("reads clusters, cluster/namespace pairs and *, grouping a cluster's namespaces", () => {
    const items = allowedItems(" eu-1, eu-2/web ,, eu-2/api, */monitoring, eu-1 ");
    assert.deepEqual(items, ["eu-1", "eu-2/web", "eu-2/api", "*/monitoring", "eu-1"]);
    assert.deepEqual(parseAllowedConsumers(items), {
      entries: [
        { cluster: "eu-1" },
        { cluster: "eu-2", namespaces: ["web", "api"] },
        { cluster: "*", namespaces: ["monitoring"] },
      ],
      invalid: [],
    });
  });

  it("returns malformed items as invalid, allowing nothing through them", () => {
    const { entries, invalid } = parseAllowedConsumers(["EU-1", "eu-2/web/x", "eu-3/", "eu-4/Web", "ok"]);
    assert.deepEqual(invalid, ["EU-1", "eu-2/web/x", "eu-3/", "eu-4/Web"]);
    assert.deepEqual(entries, [{ cluster: "ok" }]);
  });

  it("tells what a cluster may reach: all of it, some namespaces, or nothing", () => {
    const { entries } = parseAllowedConsumers(["eu-1", "eu-2/web", "*/monitoring"]);
    assert.equal(accessOfCluster(entries, "eu-1"), "all");
    assert.deepEqual(accessOfCluster(entries, "eu-2"), ["web", "monitoring"]);
    assert.deepEqual(accessOfCluster(entries, "us-1"), ["monitoring"]);
    assert.equal(accessOfCluster([{ cluster: "eu-1" }], "us-1"), "none");
  });
});
