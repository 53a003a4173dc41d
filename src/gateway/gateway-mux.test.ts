/**
 * Every case of gateway.test.ts with importing gateways that multiplex streams over two
 * connections per peer (src/gateway/mux.ts): the data path, refusals, policy, early data and
 * operations must behave the same either way.
 */
process.env["MERIDIAN_TEST_MULTIPLEX"] = "2";
await import("./gateway.test.js");
