import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { explain, type ExplainInput, type MemberObservation } from "./explain.js";

const ok = { status: "True", reason: "Ok", message: "" };
const member = (cluster: string, over: Partial<MemberObservation> = {}): MemberObservation => ({
  cluster,
  reachable: true,
  namespaceExists: true,
  hasService: false,
  ...over,
});
const exporter = (cluster: string, allowedClusters?: string[]): MemberObservation =>
  member(cluster, {
    hasService: true,
    serviceExport: {
      conditions: {
        Valid: ok,
        Ready: { status: "True", reason: "Exported", message: "Imported into 2 clusters: east, west." },
        Conflict: { status: "False", reason: "NoConflicts", message: "" },
      },
      ...(allowedClusters ? { allowedClusters } : {}),
    },
  });

const healthy = (): ExplainInput => ({
  namespace: "shop",
  service: "cart",
  from: "west",
  members: [member("west"), exporter("east")],
  serviceImport: {
    type: "ClusterSetIP",
    ips: ["10.96.0.5"],
    ports: [{ port: 80, protocol: "TCP" }],
    clusters: ["east"],
    flat: false,
  },
  endpoints: [{ cluster: "east", ready: 2, notReady: 0 }],
  dns: { answers: ["10.96.0.5"] },
  gateway: {
    clusterId: "west",
    peers: [{ clusterId: "east", available: true, probe: "healthy", consecutiveFailures: 0 }],
    services: [
      {
        service: "shop/cart",
        port: 80,
        clusters: [
          { clusterId: "east", tier: 0, weight: 2, usable: true, sharePercent: 100, readyEndpoints: 2 },
        ],
      },
    ],
  },
  connection: { ok: true, detail: "connected" },
});

const step = (input: ExplainInput, check: string) => explain(input).steps.find((s) => s.check === check)!;

describe("explain", () => {
  it("calls a service with every step passing reachable", () => {
    const e = explain(healthy());
    assert.equal(e.reachable, true);
    assert.deepEqual(
      e.steps.map((s) => [s.check, s.status]),
      [
        ["consumer", "ok"],
        ["service", "ok"],
        ["export in east", "ok"],
        ["import in west", "ok"],
        ["endpoints", "ok"],
        ["dns", "ok"],
        ["access", "ok"],
        ["gateway", "ok"],
        ["connection", "ok"],
      ],
    );
  });

  it("says to export a service nobody exports, naming the cluster that has it", () => {
    const input = healthy();
    input.members = [member("west"), member("east", { hasService: true })];
    delete input.serviceImport;
    input.endpoints = [];
    const e = explain(input);
    assert.equal(e.reachable, false);
    const exp = e.steps.find((s) => s.check === "export")!;
    assert.equal(exp.status, "fail");
    assert.equal(exp.hint, "meridian export cart -n shop --cluster east");
  });

  it("explains a missing import by the consumer's missing namespace", () => {
    const input = healthy();
    input.members[0] = member("west", { namespaceExists: false });
    delete input.serviceImport;
    const s = step(input, "import in west");
    assert.equal(s.status, "fail");
    assert.match(s.hint!, /kubectl --context west create namespace shop/);
  });

  it("fails on an invalid export with its message, and warns on a conflict", () => {
    const input = healthy();
    input.members[1]!.serviceExport!.conditions["Valid"] = {
      status: "False",
      reason: "NoService",
      message: "Service shop/cart does not exist",
    };
    assert.equal(step(input, "export in east").status, "fail");
    assert.match(step(input, "export in east").detail, /NoService.*does not exist/);
    const conflicted = healthy();
    conflicted.members[1]!.serviceExport!.conditions["Conflict"] = {
      status: "True",
      reason: "PortConflict",
      message: "ports differ",
    };
    assert.equal(step(conflicted, "export in east").status, "warn");
    assert.equal(explain(conflicted).reachable, true);
  });

  it("fails when no exporter has a ready endpoint, or every exporter with one refuses the consumer", () => {
    const none = healthy();
    none.endpoints = [{ cluster: "east", ready: 0, notReady: 3 }];
    assert.equal(step(none, "endpoints").status, "fail");
    const refused = healthy();
    refused.members[1] = exporter("east", ["north"]);
    const s = step(refused, "access");
    assert.equal(s.status, "fail");
    assert.equal(s.detail, "east refuses west (allowed: east: north)");
    assert.match(s.hint!, /add west to gateway.meridian.dev\/allowed-clusters on the ServiceExport in east/);
    const own = healthy();
    own.from = "east";
    own.members[1] = exporter("east", ["north"]);
    assert.equal(step(own, "access").status, "ok", "east reaches its own endpoints without its gateway");
    const partly = healthy();
    partly.members.push(exporter("north", ["east"]));
    partly.endpoints.push({ cluster: "north", ready: 1, notReady: 0 });
    assert.equal(step(partly, "access").status, "warn");
  });

  it("warns, without failing, when an exporter lets in only some namespaces of the consumer", () => {
    const scoped = healthy();
    scoped.members[1] = exporter("east", ["north", "west/web", "west/api"]);
    const s = step(scoped, "access");
    assert.equal(s.status, "warn");
    assert.equal(s.detail, "east lets in clients of west in web, api only");
    assert.equal(s.hint, "connect from a pod in an allowed namespace of west");
    assert.equal(explain(scoped).reachable, true);
    const typo = healthy();
    typo.members[1] = exporter("east", ["West"]);
    assert.equal(step(typo, "access").status, "fail", "a malformed item allows nobody");
  });

  it("fails on a wrong DNS answer and on a gateway with no usable cluster, naming the peers down", () => {
    const dns = healthy();
    dns.dns = { answers: ["10.96.9.9"] };
    assert.match(step(dns, "dns").detail, /not 10\.96\.0\.5/);
    const gw = healthy();
    gw.gateway!.peers[0]!.available = false;
    gw.gateway!.services[0]!.clusters[0]!.usable = false;
    const s = step(gw, "gateway");
    assert.equal(s.status, "fail");
    assert.match(s.detail, /no usable cluster.*peers down: east/);
  });

  it("warns when the consumer's gateway is refusing new connections at a limit, and says which to raise", () => {
    const full = healthy();
    full.gateway!.atLimit = { outbound: "open-files" };
    const s = step(full, "gateway");
    assert.equal(s.status, "warn");
    assert.match(s.detail, /refusing new connections at its limit \(open-files\)/);
    assert.match(
      s.hint!,
      /west's gateway is refusing new connections for want of file descriptors: raise its open-file limit/,
    );
    full.gateway!.atLimit = { outbound: "max-connections" };
    assert.match(step(full, "gateway").hint!, /at --max-connections: raise it/);
    const inboundOnly = healthy();
    inboundOnly.gateway!.atLimit = { inbound: "max-connections" };
    assert.equal(
      step(inboundOnly, "gateway").status,
      "ok",
      "its own exports' limit does not stop west's clients",
    );
  });

  it("says an SCTP port cannot cross a gateway and points to flat mode: fails with no TCP or UDP port, warns beside one", () => {
    const sctpOnly = healthy();
    sctpOnly.serviceImport!.ports = [{ port: 2905, protocol: "SCTP" }];
    sctpOnly.gateway!.services = [];
    const s = step(sctpOnly, "gateway");
    assert.equal(s.status, "fail");
    assert.match(s.detail, /shop\/cart has no TCP or UDP port: 2905\/SCTP cannot cross a gateway/);
    assert.match(s.hint!, /gateway\.meridian\.dev\/mode: flat/);
    assert.equal(explain(sctpOnly).reachable, false);

    const mixed = healthy();
    mixed.serviceImport!.ports.push({ port: 53, protocol: "UDP" }, { port: 9, protocol: "SCTP" });
    mixed.gateway!.services.push({ ...mixed.gateway!.services[0]!, port: 53, protocol: "UDP" });
    const m = step(mixed, "gateway");
    assert.equal(m.status, "warn");
    assert.match(
      m.detail,
      /port 80: east 100%; port 53\/UDP: east 100%; 9\/SCTP not carried \(gateways carry TCP and UDP\)/,
    );
    assert.match(m.hint!, /flat mode/);
    assert.equal(explain(mixed).reachable, true, "the TCP and UDP ports still work");

    const udp = healthy();
    udp.serviceImport!.ports.push({ port: 53, protocol: "UDP" });
    udp.gateway!.services.push({ ...udp.gateway!.services[0]!, port: 53, protocol: "UDP" });
    assert.equal(step(udp, "gateway").status, "ok", "UDP crosses the gateways");

    const udpOnly = healthy();
    udpOnly.serviceImport!.ports = [{ port: 53, protocol: "UDP" }];
    udpOnly.gateway!.services = [{ ...udpOnly.gateway!.services[0]!, port: 53, protocol: "UDP" }];
    delete udpOnly.connection;
    assert.equal(step(udpOnly, "gateway").status, "ok");
    assert.match(step(udpOnly, "connection").detail, /only UDP ports, and a UDP service need not answer/);
    assert.equal(explain(udpOnly).reachable, true, "an untried probe does not make it unreachable");

    const notSeen = healthy();
    notSeen.gateway!.services = [];
    assert.match(step(notSeen, "gateway").hint!, /has not seen the import yet/);
  });

  it("skips what it could not check, and a flat import needs no gateway", () => {
    const input = healthy();
    delete input.dns;
    delete input.connection;
    delete input.gateway;
    input.serviceImport!.flat = true;
    const e = explain(input);
    assert.equal(step(input, "dns").status, "skipped");
    assert.equal(step(input, "connection").status, "skipped");
    assert.equal(step(input, "gateway").status, "ok");
    assert.equal(e.reachable, true);
  });
});
