import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import path from "node:path";
import { describe, it } from "node:test";
import {
  connectionBudget,
  DescriptorBudget,
  descriptorsHeld,
  IdleSet,
  openFileLimits,
  maxConnectionsWarning,
  parseOpenFileLimit,
} from "./file-limit.js";

const limitsText = (soft: string, hard: string): string =>
  [
    "Limit                     Soft Limit           Hard Limit           Units     ",
    "Max processes             127431               127431               processes ",
    `Max open files            ${soft.padEnd(20)} ${hard.padEnd(20)} files     `,
    "Max locked memory         8388608              8388608              bytes     ",
  ].join("\n");

describe("the open-file limit", () => {
  it("is read from /proc/<pid>/limits", () => {
    assert.deepEqual(parseOpenFileLimit(limitsText("1024", "524288")), { soft: 1024, hard: 524288 });
    assert.deepEqual(parseOpenFileLimit(limitsText("65536", "unlimited")), { soft: 65536, hard: undefined });
    assert.equal(parseOpenFileLimit(limitsText("unlimited", "unlimited")), undefined);
    assert.equal(parseOpenFileLimit("Max processes 10 10 processes"), undefined);
  });

  it("is this process's own, with the soft limit raised to the hard one as Node starts", () => {
    const script = path.join(path.dirname(new URL(import.meta.url).pathname), "file-limit.ts");
    const out = execFileSync(
      "prlimit",
      [
        "--nofile=300:4000",
        process.execPath,
        "--import",
        "tsx",
        "-e",
        `import(${JSON.stringify(script)}).then((m) => console.log(JSON.stringify(m.readOpenFileLimit())))`,
      ],
      { encoding: "utf8" },
    );
    assert.deepEqual(JSON.parse(out), { soft: 4000, hard: 4000 });
  });

  it("leaves a reserve for listeners, peers and watches, and counts a peer connection per stream without multiplexing", () => {
    assert.equal(connectionBudget(20_000, 2), 18_976);
    assert.equal(connectionBudget(20_000, 0), 9_488);
    assert.equal(connectionBudget(1024, 2), 768);
    assert.equal(connectionBudget(8, 2), 6);
  });

  it("counts a connection's own socket, if it has one, and its own peer connection, if not multiplexed", () => {
    assert.equal(descriptorsHeld(true, true), 1);
    assert.equal(descriptorsHeld(true, false), 2);
    assert.equal(
      descriptorsHeld(false, true),
      0,
      "a UDP flow on the importing gateway shares the listener's socket",
    );
    assert.equal(descriptorsHeld(false, false), 1);
  });

  it("warns when --max-connections asks for more than the limit leaves room for, and only then", () => {
    const warning = maxConnectionsWarning({ soft: 20_000, hard: 20_000 }, 18_976, 50_000);
    assert.match(
      warning!,
      /--max-connections 50000 is more than the open-file limit \(20000\).*beyond 18976/,
    );
    assert.equal(maxConnectionsWarning({ soft: 20_000, hard: 20_000 }, 18_976, 10_000), undefined);
    assert.equal(maxConnectionsWarning({ soft: 20_000, hard: 20_000 }, 18_976, undefined), undefined);
  });
});

describe("what the open-file limit sets", () => {
  it("lowers the default connection limit to what fits, and then is the cause of refusals at it", () => {
    assert.deepEqual(openFileLimits({ soft: 4, hard: 4 }, 0, undefined), {
      maxConnections: 1,
      descriptorBudget: 3,
      maxConnectionsCause: "open-files",
    });
    assert.deepEqual(openFileLimits(undefined, 2, undefined), {
      maxConnections: 20_000,
      descriptorBudget: Number.POSITIVE_INFINITY,
      maxConnectionsCause: "max-connections",
    });
  });

  it("leaves refusals at an explicit --max-connections to the flag, and warns when the files cannot hold it", () => {
    const limits = openFileLimits({ soft: 4096, hard: 4096 }, 0, 5000);
    assert.equal(limits.maxConnectionsCause, "max-connections");
    assert.match(
      limits.warning!,
      /--max-connections 5000 is more than the open-file limit \(4096\) leaves room for/,
    );
    assert.equal(openFileLimits({ soft: 4096, hard: 4096 }, 0, 100).warning, undefined);
  });
});

describe("the descriptor budget", () => {
  /** Idle connections that can be counted and closed, each remembering whether it was destroyed. */
  const idleOf = (n: number) => {
    const set = new IdleSet<{ destroyed: boolean; destroy(): void }>();
    const items = Array.from({ length: n }, () => ({
      destroyed: false,
      destroy() {
        this.destroyed = true;
      },
    }));
    for (const item of items) set.add(item);
    return { set, items };
  };

  it("admits what fits beside the streams, and refuses the rest", () => {
    const budget = new DescriptorBudget(4, () => []);
    assert.ok(budget.fits(4));
    budget.take(3);
    assert.ok(budget.fits(1));
    assert.ok(!budget.fits(2));
    budget.release(3);
    assert.equal(budget.streams, 0);
    assert.ok(budget.fits(4));
  });

  it("closes idle connections to make room, the first source's first", () => {
    const ours = idleOf(2);
    const peers = idleOf(2);
    const budget = new DescriptorBudget(6, () => [ours.set, peers.set]);
    budget.take(2);
    assert.equal(budget.idle, 4);
    assert.ok(budget.fits(2), "room once two idle connections close");
    assert.deepEqual(
      ours.items.map((i) => i.destroyed),
      [true, true],
    );
    assert.deepEqual(
      peers.items.map((i) => i.destroyed),
      [false, false],
    );
    assert.equal(budget.idle, 2);
  });

  it("closes nothing for streams that would not fit even without idle connections", () => {
    const idle = idleOf(3);
    const budget = new DescriptorBudget(6, () => [idle.set]);
    budget.take(5);
    assert.ok(!budget.fits(2));
    assert.equal(budget.idle, 3, "the idle connections stay");
  });

  it("has room for another idle connection only below the limit", () => {
    const idle = idleOf(2);
    const budget = new DescriptorBudget(4, () => [idle.set]);
    budget.take(1);
    assert.ok(budget.roomForIdle);
    idle.set.add({ destroyed: false, destroy() {} });
    assert.ok(!budget.roomForIdle, "one stream and three idle connections fill four");
  });

  it("forgets an idle connection that goes back to work, and closes at most what it has", () => {
    const idle = idleOf(2);
    idle.set.delete(idle.items[0]!);
    assert.equal(idle.set.idleCount, 1);
    assert.equal(idle.set.closeIdle(5), 1);
    assert.deepEqual(
      idle.items.map((i) => i.destroyed),
      [false, true],
    );
    assert.equal(idle.set.idleCount, 0);
  });
});
