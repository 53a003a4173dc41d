import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { formatListenPorts, parseListenPorts } from "../api/meridian.js";
import { gatewayAddresses, ListenPortAllocator, LISTEN_PORT_RANGE } from "./gateway-ports.js";

describe("gateway listen ports", () => {
  it("allocates the lowest free port, keeps a key's ports stable, and frees what a key no longer uses", () => {
    const a = new ListenPortAllocator();
    const first = LISTEN_PORT_RANGE.first;
    assert.deepEqual(
      [...a.allocate("shop/cart", ["http/TCP", "grpc/TCP"])],
      [
        ["http/TCP", first],
        ["grpc/TCP", first + 1],
      ],
    );
    assert.deepEqual([...a.allocate("shop/web", ["/TCP"])], [["/TCP", first + 2]]);
    assert.deepEqual([...a.allocate("shop/cart", ["http/TCP"])], [["http/TCP", first]]);
    assert.deepEqual([...a.allocate("shop/api", ["/TCP"])], [["/TCP", first + 1]], "grpc's port was freed");
    a.release("shop/cart");
    assert.deepEqual([...a.allocate("shop/new", ["/TCP"])], [["/TCP", first]]);
  });

  it("resumes from the ports on existing imports, and reallocates a clash or a port out of range", () => {
    const a = new ListenPortAllocator();
    a.seed("shop/cart", new Map([["http/TCP", 20005]]));
    a.seed(
      "shop/web",
      new Map([
        ["http/TCP", 20005],
        ["admin/TCP", 80],
      ]),
    );
    assert.deepEqual([...a.allocate("shop/cart", ["http/TCP"])], [["http/TCP", 20005]]);
    assert.deepEqual(
      [...a.allocate("shop/web", ["http/TCP", "admin/TCP"])],
      [
        ["http/TCP", LISTEN_PORT_RANGE.first],
        ["admin/TCP", LISTEN_PORT_RANGE.first + 1],
      ],
    );
  });

  it("writes and reads the annotation, skipping entries that do not parse", () => {
    const ports = new Map([
      ["http/TCP", 20001],
      ["/TCP", 20002],
    ]);
    assert.equal(formatListenPorts(ports), "/TCP=20002,http/TCP=20001");
    assert.deepEqual(
      parseListenPorts("/TCP=20002,http/TCP=20001"),
      new Map([
        ["/TCP", 20002],
        ["http/TCP", 20001],
      ]),
    );
    assert.deepEqual(
      parseListenPorts("http/TCP=x, =5, http=20001, a/TCP=70000, b/UDP=20003"),
      new Map([["b/UDP", 20003]]),
    );
    assert.deepEqual(parseListenPorts(undefined), new Map());
  });

  it("finds the member's gateway in the ready endpoints of meridian-system/meridian-gateway", () => {
    const member = {
      sourceSlicesOf: (key: string) =>
        key === "meridian-system/meridian-gateway"
          ? [
              {
                addressType: "IPv4",
                endpoints: [
                  { addresses: ["10.0.0.9"], conditions: { ready: true } },
                  { addresses: ["10.0.0.3"] },
                  { addresses: ["10.0.0.4"], conditions: { ready: false } },
                ],
              },
              { addressType: "FQDN", endpoints: [{ addresses: ["gw.example"] }] },
            ]
          : [],
    };
    assert.deepEqual(gatewayAddresses(member), [
      { address: "10.0.0.3", addressType: "IPv4" },
      { address: "10.0.0.9", addressType: "IPv4" },
    ]);
  });
});
