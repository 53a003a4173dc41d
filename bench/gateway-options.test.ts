import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseGatewayBenchArgs } from "./gateway-options.js";

describe("bench/gateway.ts flags", () => {
  it("defaults to a full clusterset run with one warm-up round", () => {
    const o = parseGatewayBenchArgs([]);
    assert.equal(o.on, "clusterset");
    assert.equal(o.rounds, 5);
    assert.equal(o.warmupRounds, 1);
    assert.equal(o.seconds, 3);
    assert.equal(o.idle, 5000);
    assert.equal(o.withNodeRelay, false);
    assert.equal(o.muxRelayConnections, 0);
    assert.equal(o.multiplex, undefined);
    assert.equal(o.only, undefined);
    assert.deepEqual([...o.phases], ["throughput", "download", "connections", "latency", "memory"]);
  });

  it("takes the iteration flags", () => {
    const o = parseGatewayBenchArgs(
      ["--on", "loopback", "--only", "meridian", "--phases", "latency,connections", "--warmup-rounds", "0",
        "--with-node-relay", "--with-mux-relay", "4", "--multiplex", "0", "--haproxy-threads", "1", "--gateway-node-flags", " --a  --b "],
    ); // prettier-ignore
    assert.equal(o.on, "loopback");
    assert.equal(o.only, "meridian");
    assert.deepEqual([...o.phases], ["latency", "connections"]);
    assert.equal(o.warmupRounds, 0);
    assert.equal(o.withNodeRelay, true);
    assert.equal(o.muxRelayConnections, 4);
    assert.equal(o.multiplex, 0);
    assert.equal(o.haproxyThreads, 1);
    assert.deepEqual(o.gatewayNodeFlags, ["--a", "--b"]);
  });

  const refusals: Array<[string[], RegExp]> = [
    [["--warmup-rounds", "x"], /--warmup-rounds takes a whole number of at least 0, not "x"/],
    [["--warmup-rounds=-1"], /--warmup-rounds takes a whole number of at least 0, not "-1"/],
    [["--rounds", "0"], /--rounds takes a whole number of at least 1, not "0"/],
    [["--rounds", "2.5"], /--rounds takes a whole number/],
    [["--idle", ""], /--idle takes a whole number of at least 1, not ""/],
    [["--seconds", "soon"], /--seconds takes a number above 0, not "soon"/],
    [["--multiplex=-2"], /--multiplex takes a whole number of at least 0, not "-2"/],
    [["--with-mux-relay", "0"], /--with-mux-relay takes a whole number of at least 1, not "0"/],
    [["--haproxy-threads", "0"], /--haproxy-threads takes a whole number of at least 1/],
    [["--on", "moon"], /--on takes clusterset or loopback, not "moon"/],
    [["--only", "envoy"], /--only takes meridian or haproxy, not "envoy"/],
    [["--phases", "latency"], /--phases goes with --only/],
    [["--only", "haproxy", "--phases", "latency,speed"], /"speed" is none of them/],
    [["--profile", "/tmp/p"], /use them with --on loopback/],
    [["--gateway-node-flags", ""], /use them with --on loopback/],
  ];
  for (const [args, message] of refusals)
    it(`refuses ${args.join(" ") || "(empty)"} with a message that names the flag`, () => {
      assert.throws(() => parseGatewayBenchArgs(args), message);
    });
});
