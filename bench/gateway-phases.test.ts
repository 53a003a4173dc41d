import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { growthPerTenThousandMiB } from "./gateway-phases.js";

describe("idle memory per 10k connections", () => {
  it("scales the RSS growth of the connections opened to 10k", () => {
    // 5,000 connections took 50 MiB: 100 MiB per 10k.
    assert.equal(growthPerTenThousandMiB(200 * 1024, 250 * 1024, 5000), 100);
  });

  it("reports no figure when RSS did not grow or nothing was opened, rather than a wrong one", () => {
    assert.equal(growthPerTenThousandMiB(250 * 1024, 248 * 1024, 5000), undefined, "RSS fell");
    assert.equal(growthPerTenThousandMiB(250 * 1024, 250 * 1024, 5000), undefined, "RSS stayed");
    assert.equal(growthPerTenThousandMiB(200 * 1024, 250 * 1024, 0), undefined, "no connection opened");
  });
});
