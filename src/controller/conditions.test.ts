import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { V1Condition } from "@kubernetes/client-node";
import {
  conditionsEqual,
  setCondition,
  toDate,
  truncateToSeconds,
  withTransitionTime,
} from "./conditions.js";
import type { ConditionSpec } from "./conditions.js";

const EARLIER = new Date("2024-01-01T00:00:00Z");
const NOW = new Date("2024-06-01T12:00:00.750Z");

const existing: V1Condition[] = [
  { type: "Valid", status: "True", reason: "Valid", message: "", lastTransitionTime: EARLIER },
];

describe("withTransitionTime", () => {
  const cases: { name: string; next: ConditionSpec; previous: V1Condition[] | undefined; expected: Date }[] =
    [
      {
        name: "same status keeps the previous time even if reason and message change",
        next: { type: "Valid", status: "True", reason: "Other", message: "changed" },
        previous: existing,
        expected: EARLIER,
      },
      {
        name: "changed status takes now, truncated to seconds",
        next: { type: "Valid", status: "False", reason: "NoService", message: "" },
        previous: existing,
        expected: new Date("2024-06-01T12:00:00Z"),
      },
      {
        name: "a new type takes now",
        next: { type: "Ready", status: "True", reason: "Exported", message: "" },
        previous: existing,
        expected: new Date("2024-06-01T12:00:00Z"),
      },
      {
        name: "no previous conditions take now",
        next: { type: "Valid", status: "True", reason: "Valid", message: "" },
        previous: undefined,
        expected: new Date("2024-06-01T12:00:00Z"),
      },
      {
        name: "an RFC 3339 string from raw JSON is read",
        next: { type: "Valid", status: "True", reason: "Valid", message: "" },
        previous: [
          {
            type: "Valid",
            status: "True",
            reason: "Valid",
            message: "",
            lastTransitionTime: "2024-01-01T00:00:00Z" as unknown as Date,
          },
        ],
        expected: EARLIER,
      },
      {
        name: "an unreadable previous time is replaced by now",
        next: { type: "Valid", status: "True", reason: "Valid", message: "" },
        previous: [
          {
            type: "Valid",
            status: "True",
            reason: "Valid",
            message: "",
            lastTransitionTime: "garbage" as unknown as Date,
          },
        ],
        expected: new Date("2024-06-01T12:00:00Z"),
      },
    ];
  for (const { name, next, previous, expected } of cases) {
    it(name, () => {
      const condition = withTransitionTime(previous, next, NOW);
      assert.deepEqual(condition.lastTransitionTime, expected);
      assert.equal(condition.reason, next.reason);
      assert.equal(condition.message, next.message);
    });
  }

  it("copies observedGeneration only when given", () => {
    const spec: ConditionSpec = { type: "Valid", status: "True", reason: "Valid", message: "" };
    assert.equal("observedGeneration" in withTransitionTime(undefined, spec, NOW), false);
    assert.equal(
      withTransitionTime(undefined, { ...spec, observedGeneration: 3 }, NOW).observedGeneration,
      3,
    );
  });
});

describe("setCondition", () => {
  it("replaces a condition of the same type in place and appends new types", () => {
    const afterReplace = setCondition(
      existing,
      { type: "Valid", status: "False", reason: "NoService", message: "" },
      NOW,
    );
    assert.equal(afterReplace.length, 1);
    assert.equal(afterReplace[0]?.status, "False");
    const afterAppend = setCondition(
      afterReplace,
      { type: "Ready", status: "True", reason: "Exported", message: "" },
      NOW,
    );
    assert.deepEqual(
      afterAppend.map((c) => c.type),
      ["Valid", "Ready"],
    );
    assert.equal(existing[0]?.status, "True", "input not modified");
  });
});

describe("conditionsEqual", () => {
  const a: V1Condition[] = [
    { type: "Valid", status: "True", reason: "Valid", message: "", lastTransitionTime: EARLIER },
    { type: "Ready", status: "True", reason: "Exported", message: "m", lastTransitionTime: EARLIER },
  ];
  it("ignores order and compares instants, not representations", () => {
    const b = [{ ...a[1]!, lastTransitionTime: "2024-01-01T00:00:00Z" as unknown as Date }, { ...a[0]! }];
    assert.ok(conditionsEqual(a, b));
  });
  it("sees changed status, reason, message and time", () => {
    assert.ok(!conditionsEqual(a, [a[0]!, { ...a[1]!, status: "False" }]));
    assert.ok(!conditionsEqual(a, [a[0]!, { ...a[1]!, reason: "Pending" }]));
    assert.ok(!conditionsEqual(a, [a[0]!, { ...a[1]!, message: "other" }]));
    assert.ok(!conditionsEqual(a, [a[0]!, { ...a[1]!, lastTransitionTime: NOW }]));
    assert.ok(!conditionsEqual(a, [a[0]!]));
    assert.ok(conditionsEqual(undefined, []));
  });
});

describe("time helpers", () => {
  it("truncates to whole seconds and parses dates", () => {
    assert.equal(truncateToSeconds(NOW).toISOString(), "2024-06-01T12:00:00.000Z");
    assert.equal(toDate("2024-01-01T00:00:00Z")?.getTime(), EARLIER.getTime());
    assert.equal(toDate(undefined), undefined);
    assert.equal(toDate(new Date(Number.NaN)), undefined);
  });
});
