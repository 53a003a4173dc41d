import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import type {
  V1Condition,
  V1Endpoint,
  V1EndpointSlice,
  V1Service,
  V1ServiceSpec,
} from "@kubernetes/client-node";
import type { ServiceExport, ServiceImportPort } from "../api/mcs.js";
import {
  ANNOTATION_DERIVED_SERVICE,
  ANNOTATION_EXPORT_TO,
  DEFAULT_CONTROLLER_NAME,
  POD_ENDPOINT_MODE,
  derivedServiceName,
  desiredState,
  exportTargets,
  ownedObjectLabels,
} from "./desired.js";
import type {
  ClusterObservation,
  DesiredExport,
  DesiredImport,
  DesiredService,
  ObservedService,
} from "./desired.js";

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

const NS = "shop";
const NAME = "cart";
const DERIVED = "derived-"; // prefix; the exact name is checked in names.test.ts
const NOW = new Date("2024-06-01T12:00:00Z");
const LATER = new Date("2024-06-02T08:30:00Z");
const T1 = "2024-01-01T00:00:01Z";
const T2 = "2024-01-01T00:00:02Z";
const T3 = "2024-01-01T00:00:03Z";
const OPTIONS = { now: NOW };

const HTTP: ServiceImportPort = { name: "http", protocol: "TCP", port: 80 };

function service(spec: V1ServiceSpec = {}, name = NAME): V1Service {
  return {
    apiVersion: "v1",
    kind: "Service",
    metadata: { name, namespace: NS },
    spec: {
      type: "ClusterIP",
      clusterIP: "10.96.0.10",
      clusterIPs: ["10.96.0.10"],
      ipFamilies: ["IPv4"],
      ipFamilyPolicy: "SingleStack",
      ports: [{ name: "http", protocol: "TCP", port: 80, targetPort: 8080 }],
      sessionAffinity: "None",
      internalTrafficPolicy: "Cluster",
      ...spec,
    },
  };
}

function headless(spec: V1ServiceSpec = {}): V1Service {
  return service({ clusterIP: "None", clusterIPs: ["None"], ...spec });
}

function serviceExport(
  created: string,
  options: {
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    exportTo?: string;
    conditions?: V1Condition[];
    generation?: number;
  } = {},
): ServiceExport {
  const metadataAnnotations =
    options.exportTo === undefined ? undefined : { [ANNOTATION_EXPORT_TO]: options.exportTo };
  const result: ServiceExport = {
    apiVersion: "multicluster.x-k8s.io/v1beta1",
    kind: "ServiceExport",
    metadata: { name: NAME, namespace: NS, creationTimestamp: new Date(created) },
    spec: {},
  };
  if (metadataAnnotations !== undefined) result.metadata.annotations = metadataAnnotations;
  if (options.generation !== undefined) result.metadata.generation = options.generation;
  if (options.labels !== undefined) result.spec!.exportedLabels = options.labels;
  if (options.annotations !== undefined) result.spec!.exportedAnnotations = options.annotations;
  if (options.conditions !== undefined) result.status = { conditions: options.conditions };
  return result;
}

type EndpointFixture = { ip: string; ready?: boolean; hostname?: string; terminating?: boolean };

function endpointSlice(
  name: string,
  endpoints: EndpointFixture[],
  options: { addressType?: string; ports?: { name?: string; port: number; protocol?: string }[] } = {},
): V1EndpointSlice {
  return {
    apiVersion: "discovery.k8s.io/v1",
    kind: "EndpointSlice",
    metadata: {
      name,
      namespace: NS,
      labels: {
        "kubernetes.io/service-name": NAME,
        "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
      },
    },
    addressType: options.addressType ?? "IPv4",
    endpoints: endpoints.map((e): V1Endpoint => {
      const endpoint: V1Endpoint = {
        addresses: [e.ip],
        conditions: { ready: e.ready ?? true, serving: e.ready ?? true, terminating: e.terminating ?? false },
        nodeName: "node-1",
        zone: "zone-a",
        targetRef: { kind: "Pod", name: `pod-${e.ip}`, namespace: NS },
      };
      if (e.hostname !== undefined) endpoint.hostname = e.hostname;
      return endpoint;
    }),
    ports: (options.ports ?? [{ name: "http", port: 8080 }]).map((p) => ({
      name: p.name,
      port: p.port,
      protocol: p.protocol ?? "TCP",
    })),
  };
}

/** A cluster that exports the default Service with one ready endpoint. */
function exporter(
  clusterId: string,
  created: string,
  overrides: Partial<ClusterObservation> = {},
): ClusterObservation {
  const index = clusterId.replace(/\D/g, "") || "9";
  return {
    clusterId,
    namespaceExists: true,
    service: service(),
    serviceExport: serviceExport(created),
    endpointSlices: [endpointSlice(`${NAME}-abc${index}`, [{ ip: `10.${index}.0.1` }])],
    ...overrides,
  };
}

/** A cluster with the namespace but no export. */
function bystander(clusterId: string, overrides: Partial<ClusterObservation> = {}): ClusterObservation {
  return { clusterId, namespaceExists: true, ...overrides };
}

function observe(clusters: ClusterObservation[], namespace = NS, name = NAME): ObservedService {
  return { namespace, name, clusters };
}

function exportOf(desired: DesiredService, clusterId: string): DesiredExport {
  const found = desired.exports.find((e) => e.clusterId === clusterId);
  assert.ok(found, `no export status for ${clusterId}`);
  return found;
}

function importIn(desired: DesiredService, clusterId: string): DesiredImport {
  const found = desired.imports.find((i) => i.clusterId === clusterId);
  assert.ok(found, `no import in ${clusterId}`);
  return found;
}

function conditionOf(exp: DesiredExport, type: string): V1Condition {
  const found = exp.conditions.find((c) => c.type === type);
  assert.ok(found, `no ${type} condition`);
  return found;
}

function sourceOf(slice: V1EndpointSlice): string | undefined {
  return slice.metadata?.labels?.["multicluster.kubernetes.io/source-cluster"];
}

// ---------------------------------------------------------------------------------------------
// Validity
// ---------------------------------------------------------------------------------------------

describe("export validity", () => {
  const cases: {
    name: string;
    cluster: ClusterObservation;
    namespace?: string;
    serviceName?: string;
    options?: { refusedNamespaces?: string[] };
    reason: string;
    ready: string;
    messageIncludes: string;
  }[] = [
    {
      name: "no Service → NoService, Ready Pending",
      cluster: exporter("c1", T1, { service: undefined, endpointSlices: [] }),
      reason: "NoService",
      ready: "Pending",
      messageIncludes: 'No Service "cart"',
    },
    {
      name: "Service being deleted counts as missing",
      cluster: exporter("c1", T1, {
        service: { ...service(), metadata: { name: NAME, namespace: NS, deletionTimestamp: new Date(T1) } },
      }),
      reason: "NoService",
      ready: "Pending",
      messageIncludes: "Create the Service",
    },
    {
      name: "ExternalName → InvalidServiceType",
      cluster: exporter("c1", T1, {
        service: service({ type: "ExternalName", externalName: "db.example.com", clusterIP: undefined }),
      }),
      reason: "InvalidServiceType",
      ready: "Failed",
      messageIncludes: "ExternalName",
    },
    {
      name: "kube-system is refused by default",
      namespace: "kube-system",
      cluster: exporter("c1", T1),
      reason: "NamespaceRefused",
      ready: "Failed",
      messageIncludes: "refused namespaces: kube-system, kube-public",
    },
    {
      name: "refused namespaces are configurable",
      namespace: "restricted",
      options: { refusedNamespaces: ["restricted"] },
      cluster: exporter("c1", T1),
      reason: "NamespaceRefused",
      ready: "Failed",
      messageIncludes: 'remove "restricted"',
    },
    {
      name: "a name that cannot be a DNS label",
      serviceName: `s${"x".repeat(63)}`,
      cluster: exporter("c1", T1),
      reason: "InvalidServiceName",
      ready: "Failed",
      messageIncludes: "at most 63 characters",
    },
    {
      name: "a cluster ID that cannot be a label value",
      cluster: exporter(`c${"1".repeat(70)}`, T1),
      reason: "InvalidClusterID",
      ready: "Failed",
      messageIncludes: "multicluster.kubernetes.io/source-cluster",
    },
    {
      name: "malformed exported labels",
      cluster: exporter("c1", T1, { serviceExport: serviceExport(T1, { labels: { "bad key!": "v" } }) }),
      reason: "InvalidExportedMetadata",
      ready: "Failed",
      messageIncludes: '"bad key!"',
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const desired = desiredState(
        observe([c.cluster, bystander("c2")], c.namespace ?? NS, c.serviceName ?? NAME),
        { ...OPTIONS, ...c.options },
      );
      const exp = exportOf(desired, c.cluster.clusterId);
      assert.equal(exp.valid, false);
      assert.deepEqual(exp.importedInto, []);
      const valid = conditionOf(exp, "Valid");
      assert.equal(valid.status, "False");
      assert.equal(valid.reason, c.reason);
      assert.ok(valid.message.includes(c.messageIncludes), valid.message);
      assert.equal(conditionOf(exp, "Ready").status, "False");
      assert.equal(conditionOf(exp, "Ready").reason, c.ready);
      assert.equal(conditionOf(exp, "Conflict").reason, "NoConflicts");
      assert.deepEqual(desired.imports, [], "an invalid export imports nothing anywhere");
      assert.equal(desired.winner, undefined);
    });
  }

  it("an invalid export does not disturb a valid one", () => {
    const desired = desiredState(
      observe([exporter("c1", T1, { service: undefined }), exporter("c2", T2), bystander("c3")]),
      OPTIONS,
    );
    assert.equal(desired.winner, "c2");
    assert.deepEqual(
      desired.imports.map((i) => i.clusterId),
      ["c1", "c2", "c3"],
    );
    assert.deepEqual(
      importIn(desired, "c1").serviceImport.status?.clusters,
      [{ cluster: "c2" }],
      "only valid exports are listed",
    );
    assert.equal(conditionOf(exportOf(desired, "c2"), "Conflict").status, "False");
  });

  it("a ServiceExport being deleted is ignored entirely", () => {
    const leaving = exporter("c1", T1);
    leaving.serviceExport!.metadata.deletionTimestamp = new Date(T3);
    const desired = desiredState(observe([leaving, bystander("c2")]), OPTIONS);
    assert.deepEqual(desired.exports, []);
    assert.deepEqual(desired.imports, []);
  });
});

// ---------------------------------------------------------------------------------------------
// A single export, end to end
// ---------------------------------------------------------------------------------------------

describe("a single ClusterIP export", () => {
  const desired = desiredState(
    observe([
      exporter("c1", T1, {
        serviceExport: serviceExport(T1, { generation: 4 }),
        derivedService: service({ clusterIPs: ["10.96.5.5"], ipFamilies: ["IPv4"] }, "derived-x"),
      }),
      bystander("c2"),
      { clusterId: "c3", namespaceExists: false },
    ]),
    OPTIONS,
  );

  it("is valid, ready, without conflict, and says where it is imported", () => {
    const exp = exportOf(desired, "c1");
    assert.deepEqual(exp.conditions, [
      {
        type: "Valid",
        status: "True",
        reason: "Valid",
        message: "",
        lastTransitionTime: NOW,
        observedGeneration: 4,
      },
      {
        type: "Ready",
        status: "True",
        reason: "Exported",
        message: 'Imported into 2 clusters: c1, c2. Not imported where namespace "shop" does not exist: c3.',
        lastTransitionTime: NOW,
        observedGeneration: 4,
      },
      {
        type: "Conflict",
        status: "False",
        reason: "NoConflicts",
        message: "",
        lastTransitionTime: NOW,
        observedGeneration: 4,
      },
    ]);
    assert.deepEqual(exp.importedInto, ["c1", "c2"]);
  });

  it("is imported in the exporting cluster too, and not where the namespace is missing", () => {
    assert.deepEqual(
      desired.imports.map((i) => i.clusterId),
      ["c1", "c2"],
    );
  });

  it("produces the ServiceImport with the winner's properties and the local VIP", () => {
    const { serviceImport } = importIn(desired, "c1");
    const derivedName = serviceImport.metadata.annotations?.[ANNOTATION_DERIVED_SERVICE] ?? "";
    assert.ok(derivedName.startsWith(DERIVED));
    assert.deepEqual(serviceImport, {
      apiVersion: "multicluster.x-k8s.io/v1beta1",
      kind: "ServiceImport",
      metadata: {
        name: NAME,
        namespace: NS,
        labels: ownedObjectLabels(NAME, DEFAULT_CONTROLLER_NAME),
        annotations: { [ANNOTATION_DERIVED_SERVICE]: derivedName },
      },
      spec: {
        ports: [HTTP],
        type: "ClusterSetIP",
        ips: ["10.96.5.5"],
        ipFamilies: ["IPv4"],
        sessionAffinity: "None",
        internalTrafficPolicy: "Cluster",
      },
      status: {
        clusters: [{ cluster: "c1" }],
        conditions: [
          { type: "Ready", status: "True", reason: "Ready", message: "", lastTransitionTime: NOW },
        ],
      },
    });
  });

  it("waits for the VIP where the derived Service has none yet", () => {
    const { serviceImport } = importIn(desired, "c2");
    assert.equal(serviceImport.spec.ips, undefined);
    assert.deepEqual(serviceImport.spec.ipFamilies, ["IPv4"]);
    const ready = serviceImport.status?.conditions?.[0];
    assert.equal(ready?.status, "False");
    assert.equal(ready?.reason, "Pending");
  });

  it("produces a selector-less ClusterIP derived Service labelled as Meridian's", () => {
    const derived = importIn(desired, "c2").derivedService;
    assert.ok(derived);
    assert.ok(derived.metadata?.name?.startsWith(DERIVED));
    assert.deepEqual(derived.metadata?.labels, ownedObjectLabels(NAME, DEFAULT_CONTROLLER_NAME));
    assert.equal(derived.spec?.selector, undefined);
    assert.deepEqual(derived.spec, {
      type: "ClusterIP",
      ports: [{ name: "http", protocol: "TCP", port: 80 }],
      ipFamilies: ["IPv4"],
      ipFamilyPolicy: "SingleStack",
      sessionAffinity: "None",
    });
  });

  it("produces one MCS EndpointSlice per source cluster with the MCS labels", () => {
    const slices = importIn(desired, "c2").endpointSlices;
    assert.equal(slices.length, 1);
    const [slice] = slices;
    const derivedName = importIn(desired, "c2").derivedService?.metadata?.name;
    assert.deepEqual(slice?.metadata?.labels, {
      "multicluster.kubernetes.io/service-name": NAME,
      "endpointslice.kubernetes.io/managed-by": DEFAULT_CONTROLLER_NAME,
      "app.kubernetes.io/managed-by": DEFAULT_CONTROLLER_NAME,
      "multicluster.meridian.dev/service-name": NAME,
      "kubernetes.io/service-name": derivedName,
      "multicluster.kubernetes.io/source-cluster": "c1",
    });
    assert.equal(slice?.metadata?.namespace, NS);
    assert.ok((slice?.metadata?.name ?? "").length <= 63);
    assert.equal(slice?.addressType, "IPv4");
    assert.deepEqual(slice?.ports, [{ name: "http", protocol: "TCP", port: 8080 }]);
    // nodeName and targetRef name objects of another cluster; zone and conditions are kept.
    assert.deepEqual(slice?.endpoints, [
      {
        addresses: ["10.1.0.1"],
        conditions: { ready: true, serving: true, terminating: false },
        zone: "zone-a",
      },
    ]);
  });

  it("gives every importing cluster identical slices (pod mode, the default)", () => {
    assert.deepEqual(importIn(desired, "c1").endpointSlices, importIn(desired, "c2").endpointSlices);
    const explicit = desiredState(
      { ...observe([exporter("c1", T1)]), endpointMode: POD_ENDPOINT_MODE },
      OPTIONS,
    );
    assert.deepEqual(explicit, desiredState(observe([exporter("c1", T1)]), OPTIONS));
  });
});

describe("derived Service name (mcs-api.md §6 vectors) end to end", () => {
  const vectors = [
    ["demo", "serve", "derived-ovtkn0laet"],
    ["default", "hello", "derived-k5cuvo1ge4"],
    ["my-ns", "my-svc", "derived-a2v4k9sqn6"],
  ] as const;
  for (const [namespace, name, expected] of vectors) {
    it(`${namespace}/${name} → ${expected}`, () => {
      assert.equal(derivedServiceName(namespace, name), expected);
      const desired = desiredState(observe([exporter("c1", T1)], namespace, name), OPTIONS);
      const imported = importIn(desired, "c1");
      assert.equal(imported.derivedService?.metadata?.name, expected);
      assert.equal(imported.serviceImport.metadata.annotations?.[ANNOTATION_DERIVED_SERVICE], expected);
      assert.equal(imported.endpointSlices[0]?.metadata?.labels?.["kubernetes.io/service-name"], expected);
    });
  }
});

describe("service types", () => {
  for (const type of ["NodePort", "LoadBalancer"]) {
    it(`${type} is exported as ClusterSetIP`, () => {
      const desired = desiredState(observe([exporter("c1", T1, { service: service({ type }) })]), OPTIONS);
      assert.equal(importIn(desired, "c1").serviceImport.spec.type, "ClusterSetIP");
      assert.equal(importIn(desired, "c1").derivedService?.spec?.type, "ClusterIP");
    });
  }

  it("headless: Headless import, no ips, no derived Service, no kube-proxy label, ipFamilies set", () => {
    const desired = desiredState(
      observe([
        exporter("c1", T1, {
          service: headless(),
          endpointSlices: [endpointSlice("s1", [{ ip: "10.1.0.1", hostname: "web-0" }])],
          derivedService: service({ clusterIPs: ["10.96.5.5"] }, "stale"),
        }),
        bystander("c2"),
      ]),
      OPTIONS,
    );
    const imported = importIn(desired, "c2");
    assert.equal(imported.serviceImport.spec.type, "Headless");
    assert.equal(imported.serviceImport.spec.ips, undefined);
    assert.deepEqual(imported.serviceImport.spec.ipFamilies, ["IPv4"]);
    assert.equal(imported.derivedService, undefined);
    assert.equal(imported.serviceImport.metadata.annotations?.[ANNOTATION_DERIVED_SERVICE], undefined);
    assert.equal(imported.serviceImport.status?.conditions?.[0]?.status, "True");
    const [slice] = imported.endpointSlices;
    assert.equal(slice?.metadata?.labels?.["kubernetes.io/service-name"], undefined);
    assert.equal(slice?.endpoints[0]?.hostname, "web-0");
  });

  it("headless without ipFamilies falls back to the families of its endpoints", () => {
    const desired = desiredState(
      observe([
        exporter("c1", T1, {
          service: headless({ ipFamilies: undefined, clusterIPs: undefined }),
          endpointSlices: [endpointSlice("s6", [{ ip: "fd00::1" }], { addressType: "IPv6" })],
        }),
      ]),
      OPTIONS,
    );
    assert.deepEqual(importIn(desired, "c1").serviceImport.spec.ipFamilies, ["IPv6"]);
  });
});

// ---------------------------------------------------------------------------------------------
// Conflicts
// ---------------------------------------------------------------------------------------------

describe("conflicts: each global property alone (c1 older, c2 differs)", () => {
  const cases: {
    name: string;
    loser: Partial<ClusterObservation>;
    winner?: Partial<ClusterObservation>;
    reason: string;
    field: string;
  }[] = [
    {
      name: "ports",
      loser: {
        service: service({
          ports: [
            { name: "http", port: 80 },
            { name: "grpc", port: 9090 },
          ],
        }),
      },
      reason: "PortConflict",
      field: "ports",
    },
    { name: "type", loser: { service: headless() }, reason: "TypeConflict", field: "type" },
    {
      name: "sessionAffinity",
      loser: { service: service({ sessionAffinity: "ClientIP" }) },
      reason: "SessionAffinityConflict",
      field: "sessionAffinity",
    },
    {
      name: "sessionAffinityConfig",
      winner: {
        service: service({
          sessionAffinity: "ClientIP",
          sessionAffinityConfig: { clientIP: { timeoutSeconds: 10800 } },
        }),
      },
      loser: {
        service: service({
          sessionAffinity: "ClientIP",
          sessionAffinityConfig: { clientIP: { timeoutSeconds: 60 } },
        }),
      },
      reason: "SessionAffinityConfigConflict",
      field: "sessionAffinityConfig",
    },
    {
      name: "exported labels",
      winner: { serviceExport: serviceExport(T1, { labels: { tier: "gold" } }) },
      loser: { serviceExport: serviceExport(T2, { labels: { tier: "silver" } }) },
      reason: "LabelsConflict",
      field: "exportedLabels",
    },
    {
      name: "exported annotations",
      loser: { serviceExport: serviceExport(T2, { annotations: { "example.com/owner": "team-b" } }) },
      reason: "AnnotationsConflict",
      field: "exportedAnnotations",
    },
    {
      name: "internalTrafficPolicy",
      loser: { service: service({ internalTrafficPolicy: "Local" }) },
      reason: "InternalTrafficPolicyConflict",
      field: "internalTrafficPolicy",
    },
    {
      name: "trafficDistribution",
      loser: { service: service({ trafficDistribution: "PreferClose" }) },
      reason: "TrafficDistributionConflict",
      field: "trafficDistribution",
    },
    {
      name: "ipFamilies",
      loser: {
        service: service({
          ipFamilies: ["IPv4", "IPv6"],
          ipFamilyPolicy: "PreferDualStack",
          clusterIPs: ["10.96.0.10", "fd00::10"],
        }),
      },
      reason: "IPFamilyConflict",
      field: "ipFamilies",
    },
  ];
  for (const c of cases) {
    it(`${c.name} → ${c.reason} on both exports`, () => {
      const desired = desiredState(
        observe([exporter("c1", T1, c.winner), exporter("c2", T2, c.loser)]),
        OPTIONS,
      );
      assert.equal(desired.winner, "c1");
      for (const clusterId of ["c1", "c2"]) {
        const conflict = conditionOf(exportOf(desired, clusterId), "Conflict");
        assert.equal(conflict.status, "True", clusterId);
        assert.equal(conflict.reason, c.reason, clusterId);
        assert.ok(conflict.message.includes(`Conflicting ${c.field}:`), conflict.message);
        assert.ok(conflict.message.includes('in cluster "c1"'), conflict.message);
        assert.ok(conflict.message.includes("1/2 clusters disagree"), conflict.message);
        // Conflicts choose values; they do not stop the export.
        assert.equal(conditionOf(exportOf(desired, clusterId), "Valid").status, "True");
        assert.equal(conditionOf(exportOf(desired, clusterId), "Ready").status, "True");
      }
      assert.ok(
        conditionOf(exportOf(desired, "c1"), "Conflict").message.includes("This export is the oldest"),
      );
      assert.ok(
        conditionOf(exportOf(desired, "c2"), "Conflict").message.includes(
          `This export differs in: ${c.field}.`,
        ),
      );
    });
  }

  it("primary family order alone is not a conflict", () => {
    const desired = desiredState(
      observe([
        exporter("c1", T1, {
          service: service({ ipFamilies: ["IPv4", "IPv6"], ipFamilyPolicy: "PreferDualStack" }),
        }),
        exporter("c2", T2, {
          service: service({ ipFamilies: ["IPv6", "IPv4"], ipFamilyPolicy: "PreferDualStack" }),
        }),
      ]),
      OPTIONS,
    );
    assert.equal(conditionOf(exportOf(desired, "c2"), "Conflict").status, "False");
  });

  it("API defaults left out compare equal to the defaults", () => {
    const desired = desiredState(
      observe([
        exporter("c1", T1),
        exporter("c2", T2, {
          service: service({ sessionAffinity: undefined, internalTrafficPolicy: undefined }),
        }),
      ]),
      OPTIONS,
    );
    assert.equal(conditionOf(exportOf(desired, "c2"), "Conflict").status, "False");
  });
});

describe("conflicts: combined and counted", () => {
  const desired = desiredState(
    observe([
      exporter("c1", T1, { serviceExport: serviceExport(T1, { labels: { tier: "gold" } }) }),
      exporter("c2", T2, {
        service: headless({ sessionAffinity: "ClientIP" }),
        serviceExport: serviceExport(T2, { labels: { tier: "silver" } }),
      }),
      exporter("c3", T3, { service: service({ sessionAffinity: "ClientIP" }) }),
      exporter("c4", T3),
    ]),
    OPTIONS,
  );

  it("joins reasons with commas in the v1beta1 order", () => {
    for (const clusterId of ["c1", "c2", "c3", "c4"]) {
      assert.equal(
        conditionOf(exportOf(desired, clusterId), "Conflict").reason,
        "TypeConflict,SessionAffinityConflict,LabelsConflict",
      );
    }
  });

  it("names each field, the winner and how many clusters disagree", () => {
    const message = conditionOf(exportOf(desired, "c4"), "Conflict").message;
    assert.ok(
      message.includes(
        'Conflicting type: using "ClusterSetIP" from the oldest ServiceExport, in cluster "c1"; 1/4',
      ),
    );
    assert.ok(
      message.includes(
        'Conflicting sessionAffinity: using "None" from the oldest ServiceExport, in cluster "c1"; 2/4',
      ),
    );
    assert.ok(
      message.includes("Conflicting exportedLabels: using the exported labels of the oldest ServiceExport"),
    );
    assert.ok(message.includes("3/4 clusters disagree"), "c2, c3 and c4 have labels other than c1's");
    assert.ok(message.includes("Exports created in the same second") === false, "no tie with the winner");
    assert.ok(message.includes("This export differs in: exportedLabels."));
  });

  it("uses the winner's values everywhere", () => {
    const spec = importIn(desired, "c3").serviceImport.spec;
    assert.equal(spec.type, "ClusterSetIP");
    assert.equal(spec.sessionAffinity, "None");
    assert.deepEqual(importIn(desired, "c3").serviceImport.metadata.labels?.tier, "gold");
  });

  it("keeps endpoints of exports that lost a conflict, type included", () => {
    assert.deepEqual(importIn(desired, "c1").endpointSlices.map(sourceOf), ["c1", "c2", "c3", "c4"]);
  });
});

describe("oldest export wins", () => {
  it("by creationTimestamp, whatever the cluster IDs", () => {
    const desired = desiredState(
      observe([exporter("a", T2), exporter("z", T1, { service: headless() })]),
      OPTIONS,
    );
    assert.equal(desired.winner, "z");
    assert.equal(importIn(desired, "a").serviceImport.spec.type, "Headless");
  });

  it("ties broken by the lowest cluster ID, and the message says so", () => {
    const desired = desiredState(
      observe([exporter("b", T1, { service: headless() }), exporter("a", T1)]),
      OPTIONS,
    );
    assert.equal(desired.winner, "a");
    assert.equal(importIn(desired, "b").serviceImport.spec.type, "ClusterSetIP");
    assert.ok(conditionOf(exportOf(desired, "b"), "Conflict").message.includes("ordered by cluster ID"));
  });

  it("accepts RFC 3339 strings for creationTimestamp (raw watch JSON)", () => {
    const older = exporter("z", T1, { service: headless() });
    older.serviceExport!.metadata.creationTimestamp = T1 as unknown as Date;
    const desired = desiredState(observe([exporter("a", T2), older]), OPTIONS);
    assert.equal(desired.winner, "z");
  });

  it("an export without creationTimestamp never wins over one with", () => {
    const undated = exporter("a", T1);
    delete undated.serviceExport!.metadata.creationTimestamp;
    const desired = desiredState(observe([undated, exporter("b", T3)]), OPTIONS);
    assert.equal(desired.winner, "b");
  });
});

// ---------------------------------------------------------------------------------------------
// Ports end to end (mcs-api.md §3.5) and StrictPortConflict
// ---------------------------------------------------------------------------------------------

describe("port merging end to end (cluster A older; both start with tcp/42, udp/42)", () => {
  const basePorts = [
    { name: "tcp", protocol: "TCP", port: 42, targetPort: 42 },
    { name: "udp", protocol: "UDP", port: 42, targetPort: 42 },
  ];
  const baseSlicePorts = [
    { name: "tcp", port: 42 },
    { name: "udp", port: 42, protocol: "UDP" },
  ];
  function scenario(
    bPorts: V1ServiceSpec["ports"],
    bSlicePorts: { name: string; port: number; protocol?: string }[],
  ): DesiredService {
    return desiredState(
      observe([
        exporter("a", T1, {
          service: service({ ports: basePorts }),
          endpointSlices: [endpointSlice("a1", [{ ip: "10.1.0.1" }], { ports: baseSlicePorts })],
        }),
        exporter("b", T2, {
          service: service({ ports: bPorts }),
          endpointSlices: [endpointSlice("b1", [{ ip: "10.2.0.1" }], { ports: bSlicePorts })],
        }),
      ]),
      OPTIONS,
    );
  }
  function slicePortsBySource(desired: DesiredService): Record<string, string[]> {
    const out: Record<string, string[]> = {};
    for (const slice of importIn(desired, "a").endpointSlices) {
      out[sourceOf(slice) ?? "?"] = (slice.ports ?? []).map((p) => `${p.name}/${p.protocol}/${p.port}`);
    }
    return out;
  }
  const names = (desired: DesiredService) =>
    importIn(desired, "a").serviceImport.spec.ports.map((p) => `${p.name}/${p.protocol}/${p.port}`);

  it("B = {tcp/42, stcp/142/SCTP}: union; B's slice serves tcp and stcp", () => {
    const desired = scenario(
      [basePorts[0]!, { name: "stcp", protocol: "SCTP", port: 142 }],
      [
        { name: "tcp", port: 42 },
        { name: "stcp", port: 142, protocol: "SCTP" },
      ],
    );
    assert.deepEqual(names(desired), ["stcp/SCTP/142", "tcp/TCP/42", "udp/UDP/42"]);
    assert.equal(conditionOf(exportOf(desired, "a"), "Conflict").reason, "PortConflict");
    assert.equal(conditionOf(exportOf(desired, "b"), "Conflict").reason, "PortConflict");
    assert.deepEqual(slicePortsBySource(desired), {
      a: ["tcp/TCP/42", "udp/UDP/42"],
      b: ["stcp/SCTP/142", "tcp/TCP/42"],
    });
  });

  it("B = {tcp/43}: A's ports exactly; B contributes no endpoints", () => {
    const desired = scenario(
      [{ name: "tcp", protocol: "TCP", port: 43, targetPort: 42 }],
      [{ name: "tcp", port: 42 }],
    );
    assert.deepEqual(names(desired), ["tcp/TCP/42", "udp/UDP/42"]);
    assert.equal(conditionOf(exportOf(desired, "b"), "Conflict").reason, "PortConflict");
    assert.deepEqual(slicePortsBySource(desired), { a: ["tcp/TCP/42", "udp/UDP/42"] });
  });

  it("B = {tcp/4242 → 42}: :42 reaches only A's pods", () => {
    const desired = scenario(
      [{ name: "tcp", protocol: "TCP", port: 4242, targetPort: 42 }],
      [{ name: "tcp", port: 42 }],
    );
    assert.deepEqual(names(desired), ["tcp/TCP/42", "udp/UDP/42"]);
    assert.deepEqual(slicePortsBySource(desired), { a: ["tcp/TCP/42", "udp/UDP/42"] });
  });

  it("B = {tcp2/4242 → 42}: union; :42 only A, :4242 (port name tcp2) only B", () => {
    const desired = scenario(
      [{ name: "tcp2", protocol: "TCP", port: 4242, targetPort: 42 }],
      [{ name: "tcp2", port: 42 }],
    );
    assert.deepEqual(names(desired), ["tcp/TCP/42", "tcp2/TCP/4242", "udp/UDP/42"]);
    assert.deepEqual(slicePortsBySource(desired), { a: ["tcp/TCP/42", "udp/UDP/42"], b: ["tcp2/TCP/42"] });
    assert.deepEqual(
      importIn(desired, "b").derivedService?.spec?.ports?.map((p) => `${p.name}/${p.port}`),
      ["tcp/42", "tcp2/4242", "udp/42"],
    );
  });

  it("same port number under another name is served under the older name", () => {
    const desired = scenario(
      [{ name: "plain", protocol: "TCP", port: 42, targetPort: 4200 }],
      [{ name: "plain", port: 4200 }],
    );
    assert.deepEqual(slicePortsBySource(desired), { a: ["tcp/TCP/42", "udp/UDP/42"], b: ["tcp/TCP/4200"] });
  });

  it("identical port sets are no conflict", () => {
    const desired = scenario(basePorts, baseSlicePorts);
    assert.equal(conditionOf(exportOf(desired, "b"), "Conflict").status, "False");
  });
});

// ---------------------------------------------------------------------------------------------
// Exported labels and annotations
// ---------------------------------------------------------------------------------------------

describe("exported labels and annotations", () => {
  it("come from the winner only (not merged), never from Service or ServiceExport metadata", () => {
    const winnerExport = serviceExport(T1, {
      labels: { tier: "gold" },
      annotations: { "example.com/doc": "a" },
    });
    winnerExport.metadata.labels = { "from-metadata": "no" };
    const winnerService = service();
    winnerService.metadata!.labels = { "from-service": "no" };
    const desired = desiredState(
      observe([
        exporter("c1", T1, { serviceExport: winnerExport, service: winnerService }),
        exporter("c2", T2, {
          serviceExport: serviceExport(T2, {
            labels: { tier: "silver", extra: "x" },
            annotations: { "example.com/other": "b" },
          }),
        }),
      ]),
      OPTIONS,
    );
    const { metadata } = importIn(desired, "c2").serviceImport;
    assert.deepEqual(metadata.labels, { tier: "gold", ...ownedObjectLabels(NAME, DEFAULT_CONTROLLER_NAME) });
    assert.deepEqual(metadata.annotations, {
      "example.com/doc": "a",
      [ANNOTATION_DERIVED_SERVICE]: importIn(desired, "c2").derivedService?.metadata?.name,
    });
  });

  it("cannot override Meridian's ownership labels", () => {
    const desired = desiredState(
      observe([
        exporter("c1", T1, {
          serviceExport: serviceExport(T1, { labels: { "app.kubernetes.io/managed-by": "someone-else" } }),
        }),
      ]),
      OPTIONS,
    );
    assert.equal(
      importIn(desired, "c1").serviceImport.metadata.labels?.["app.kubernetes.io/managed-by"],
      DEFAULT_CONTROLLER_NAME,
    );
  });
});

// ---------------------------------------------------------------------------------------------
// IP families and VIPs
// ---------------------------------------------------------------------------------------------

describe("ips aligned with ipFamilies", () => {
  const dualStackWinner = service({
    ipFamilies: ["IPv6", "IPv4"],
    ipFamilyPolicy: "RequireDualStack",
    clusterIPs: ["fd00::10", "10.96.0.10"],
  });
  const cases: {
    name: string;
    derived: V1Service | undefined;
    ipFamilies: string[];
    ips: string[] | undefined;
    ready: string;
  }[] = [
    {
      name: "both families allocated (derived Service lists them in the other order)",
      derived: service({ clusterIPs: ["10.96.7.7", "fd00::7"], ipFamilies: ["IPv4", "IPv6"] }, "d"),
      ipFamilies: ["IPv6", "IPv4"],
      ips: ["fd00::7", "10.96.7.7"],
      ready: "Ready",
    },
    {
      name: "only IPv4 available in this cluster",
      derived: service({ clusterIPs: ["10.96.7.7"], ipFamilies: ["IPv4"] }, "d"),
      ipFamilies: ["IPv4"],
      ips: ["10.96.7.7"],
      ready: "Ready",
    },
    {
      name: "families inferred from the addresses when the derived Service lacks ipFamilies",
      derived: service({ clusterIPs: ["fd00::7", "10.96.7.7"], ipFamilies: undefined }, "d"),
      ipFamilies: ["IPv6", "IPv4"],
      ips: ["fd00::7", "10.96.7.7"],
      ready: "Ready",
    },
    {
      name: "not allocated yet",
      derived: undefined,
      ipFamilies: ["IPv6", "IPv4"],
      ips: undefined,
      ready: "Pending",
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const desired = desiredState(
        observe([
          exporter("c1", T1, { service: dualStackWinner }),
          bystander("c2", { derivedService: c.derived }),
        ]),
        OPTIONS,
      );
      const { serviceImport } = importIn(desired, "c2");
      assert.deepEqual(serviceImport.spec.ipFamilies, c.ipFamilies);
      assert.deepEqual(serviceImport.spec.ips, c.ips);
      assert.equal(serviceImport.status?.conditions?.[0]?.reason, c.ready);
    });
  }

  it("IPFamilyNotSupported when no family of the service was allocated", () => {
    const desired = desiredState(
      observe([
        exporter("c1", T1, { service: service({ ipFamilies: ["IPv6"], clusterIPs: ["fd00::10"] }) }),
        bystander("c2", {
          derivedService: service({ clusterIPs: ["10.96.7.7"], ipFamilies: ["IPv4"] }, "d"),
        }),
      ]),
      OPTIONS,
    );
    const { serviceImport } = importIn(desired, "c2");
    assert.equal(serviceImport.spec.ips, undefined);
    assert.equal(serviceImport.status?.conditions?.[0]?.status, "False");
    assert.equal(serviceImport.status?.conditions?.[0]?.reason, "IPFamilyNotSupported");
  });

  it("derived Service takes the winner's families and relaxes RequireDualStack", () => {
    const desired = desiredState(observe([exporter("c1", T1, { service: dualStackWinner })]), OPTIONS);
    const spec = importIn(desired, "c1").derivedService?.spec;
    assert.deepEqual(spec?.ipFamilies, ["IPv6", "IPv4"]);
    assert.equal(spec?.ipFamilyPolicy, "PreferDualStack");
  });

  it("derived Service copies session affinity but not internalTrafficPolicy or trafficDistribution", () => {
    const desired = desiredState(
      observe([
        exporter("c1", T1, {
          service: service({
            sessionAffinity: "ClientIP",
            sessionAffinityConfig: { clientIP: { timeoutSeconds: 300 } },
            internalTrafficPolicy: "Local",
            trafficDistribution: "PreferClose",
          }),
        }),
      ]),
      OPTIONS,
    );
    const imported = importIn(desired, "c1");
    assert.equal(imported.derivedService?.spec?.sessionAffinity, "ClientIP");
    assert.deepEqual(imported.derivedService?.spec?.sessionAffinityConfig, {
      clientIP: { timeoutSeconds: 300 },
    });
    assert.equal(imported.derivedService?.spec?.internalTrafficPolicy, undefined);
    assert.equal(imported.derivedService?.spec?.trafficDistribution, undefined);
    assert.deepEqual(imported.serviceImport.spec.sessionAffinityConfig, {
      clientIP: { timeoutSeconds: 300 },
    });
    assert.equal(imported.serviceImport.spec.internalTrafficPolicy, "Local");
    assert.equal(imported.serviceImport.spec.trafficDistribution, "PreferClose");
  });
});

// ---------------------------------------------------------------------------------------------
// Where imports go: namespaces, export-to, last export
// ---------------------------------------------------------------------------------------------

describe("which clusters import", () => {
  it("export-to restricts imports to the listed clusters (exporter included only if listed)", () => {
    const desired = desiredState(
      observe([
        exporter("c1", T1, { serviceExport: serviceExport(T1, { exportTo: " c2 , c4,,gone " }) }),
        bystander("c2"),
        bystander("c3"),
        { clusterId: "c4", namespaceExists: false },
      ]),
      OPTIONS,
    );
    assert.deepEqual(
      desired.imports.map((i) => i.clusterId),
      ["c2"],
    );
    const exp = exportOf(desired, "c1");
    assert.deepEqual(exp.importedInto, ["c2"]);
    const ready = conditionOf(exp, "Ready").message;
    assert.ok(ready.startsWith("Imported into 1 cluster: c2."), ready);
    assert.ok(ready.includes("Export-to clusters not currently available: gone."), ready);
    assert.ok(ready.includes('namespace "shop" does not exist: c4.'), ready);
  });

  it("the union of targets imports; each import carries only the exports that target it", () => {
    const desired = desiredState(
      observe([
        exporter("c1", T1, { serviceExport: serviceExport(T1, { exportTo: "c3" }) }),
        exporter("c2", T2),
        bystander("c3"),
      ]),
      OPTIONS,
    );
    assert.deepEqual(
      desired.imports.map((i) => i.clusterId),
      ["c1", "c2", "c3"],
    );
    assert.deepEqual(importIn(desired, "c3").serviceImport.status?.clusters, [
      { cluster: "c1" },
      { cluster: "c2" },
    ]);
    assert.deepEqual(importIn(desired, "c3").endpointSlices.map(sourceOf), ["c1", "c2"]);
    assert.deepEqual(importIn(desired, "c1").serviceImport.status?.clusters, [{ cluster: "c2" }]);
    assert.deepEqual(importIn(desired, "c1").endpointSlices.map(sourceOf), ["c2"]);
    assert.deepEqual(exportOf(desired, "c1").importedInto, ["c3"]);
    assert.deepEqual(exportOf(desired, "c2").importedInto, ["c1", "c2", "c3"]);
    // Global properties are still decided by the globally oldest export.
    assert.equal(desired.winner, "c1");
  });

  it("an empty export-to imports nowhere and says so", () => {
    const desired = desiredState(
      observe([exporter("c1", T1, { serviceExport: serviceExport(T1, { exportTo: "" }) }), bystander("c2")]),
      OPTIONS,
    );
    assert.deepEqual(desired.imports, []);
    const ready = conditionOf(exportOf(desired, "c1"), "Ready");
    assert.equal(ready.status, "False");
    assert.equal(ready.reason, "Pending");
    assert.equal(ready.message, "Not imported into any cluster.");
  });

  it("parses export-to", () => {
    assert.equal(exportTargets(serviceExport(T1)), undefined);
    assert.deepEqual([...(exportTargets(serviceExport(T1, { exportTo: "a, b ,a" })) ?? [])], ["a", "b"]);
  });

  it("removing one of several exports keeps the import; removing the last removes it everywhere", () => {
    const both = desiredState(observe([exporter("c1", T1), exporter("c2", T2), bystander("c3")]), OPTIONS);
    assert.equal(both.imports.length, 3);
    const one = desiredState(observe([bystander("c1"), exporter("c2", T2), bystander("c3")]), OPTIONS);
    assert.equal(one.imports.length, 3);
    assert.equal(one.winner, "c2");
    assert.deepEqual(importIn(one, "c1").endpointSlices.map(sourceOf), ["c2"]);
    const none = desiredState(
      observe([
        bystander("c1", { service: service() }),
        bystander("c2", { service: service() }),
        bystander("c3"),
      ]),
      OPTIONS,
    );
    assert.deepEqual(none, { key: "shop/cart", namespace: NS, name: NAME, exports: [], imports: [] });
  });
});

// ---------------------------------------------------------------------------------------------
// Endpoint slices
// ---------------------------------------------------------------------------------------------

describe("imported EndpointSlices", () => {
  it("carry ready and not-ready endpoints with their conditions", () => {
    const desired = desiredState(
      observe([
        exporter("c1", T1, {
          endpointSlices: [
            endpointSlice("s1", [
              { ip: "10.1.0.2", ready: false },
              { ip: "10.1.0.1" },
              { ip: "10.1.0.3", ready: false, terminating: true },
            ]),
          ],
        }),
      ]),
      OPTIONS,
    );
    const [slice] = importIn(desired, "c1").endpointSlices;
    assert.deepEqual(
      slice?.endpoints.map((e) => [e.addresses[0], e.conditions]),
      [
        ["10.1.0.1", { ready: true, serving: true, terminating: false }],
        ["10.1.0.2", { ready: false, serving: false, terminating: false }],
        ["10.1.0.3", { ready: false, serving: false, terminating: true }],
      ],
    );
  });

  it("split by address type, port set and size, exactly one source cluster each, unique names", () => {
    const desired = desiredState(
      observe(
        [
          exporter("c1", T1, {
            service: service({ ipFamilies: ["IPv4", "IPv6"], ipFamilyPolicy: "PreferDualStack" }),
            endpointSlices: [
              endpointSlice("v4a", [{ ip: "10.1.0.1" }, { ip: "10.1.0.2" }, { ip: "10.1.0.3" }]),
              endpointSlice("v4b", [{ ip: "10.1.0.4" }], { ports: [{ name: "http", port: 9090 }] }),
              endpointSlice("v6", [{ ip: "fd00::1" }], { addressType: "IPv6" }),
            ],
          }),
          exporter("c2", T2, {
            service: service({ ipFamilies: ["IPv4", "IPv6"], ipFamilyPolicy: "PreferDualStack" }),
          }),
        ],
        NS,
        NAME,
      ),
      { ...OPTIONS, maxEndpointsPerSlice: 2 },
    );
    const slices = importIn(desired, "c1").endpointSlices;
    assert.deepEqual(
      slices.map((s) => [sourceOf(s), s.addressType, s.endpoints.length, s.ports?.[0]?.port]),
      [
        ["c1", "IPv4", 2, 8080],
        ["c1", "IPv4", 1, 8080],
        ["c1", "IPv4", 1, 9090],
        ["c1", "IPv6", 1, 8080],
        ["c2", "IPv4", 1, 8080],
      ],
    );
    const names = slices.map((s) => s.metadata?.name ?? "");
    assert.equal(new Set(names).size, names.length);
    for (const name of names) assert.ok(name.length <= 63 && /^[a-z0-9-]+$/.test(name), name);
  });

  it("deduplicate an endpoint listed in two source slices", () => {
    const desired = desiredState(
      observe([
        exporter("c1", T1, {
          endpointSlices: [
            endpointSlice("s1", [{ ip: "10.1.0.1" }]),
            endpointSlice("s2", [{ ip: "10.1.0.1" }]),
          ],
        }),
      ]),
      OPTIONS,
    );
    assert.equal(importIn(desired, "c1").endpointSlices[0]?.endpoints.length, 1);
  });

  it("never re-export MCS slices, skip FQDN slices, and produce no slice for a cluster without endpoints", () => {
    const mcsSlice = endpointSlice("imported", [{ ip: "10.9.9.9" }]);
    mcsSlice.metadata!.labels!["multicluster.kubernetes.io/service-name"] = NAME;
    const desired = desiredState(
      observe([
        exporter("c1", T1, {
          endpointSlices: [
            mcsSlice,
            endpointSlice("fqdn", [{ ip: "db.example.com" }], { addressType: "FQDN" }),
          ],
        }),
        exporter("c2", T2, { endpointSlices: [] }),
      ]),
      OPTIONS,
    );
    assert.deepEqual(importIn(desired, "c1").endpointSlices, []);
    assert.deepEqual(importIn(desired, "c1").serviceImport.status?.clusters, [
      { cluster: "c1" },
      { cluster: "c2" },
    ]);
  });

  it("keep a portless headless service's endpoints without ports", () => {
    const desired = desiredState(
      observe([
        exporter("c1", T1, {
          service: headless({ ports: [] }),
          endpointSlices: [endpointSlice("s1", [{ ip: "10.1.0.1" }], { ports: [] })],
        }),
      ]),
      OPTIONS,
    );
    const [slice] = importIn(desired, "c1").endpointSlices;
    assert.deepEqual(slice?.ports, []);
    assert.equal(slice?.endpoints.length, 1);
  });

  it("use the configured controller name for managed-by", () => {
    const desired = desiredState(observe([exporter("c1", T1)]), { ...OPTIONS, controllerName: "meridian" });
    const labels = importIn(desired, "c1").endpointSlices[0]?.metadata?.labels;
    assert.equal(labels?.["endpointslice.kubernetes.io/managed-by"], "meridian");
    assert.equal(labels?.["app.kubernetes.io/managed-by"], "meridian");
  });
});

// ---------------------------------------------------------------------------------------------
// DNS name limits
// ---------------------------------------------------------------------------------------------

describe("per-endpoint DNS name limits (headless)", () => {
  it("exports but explains when long names limit per-endpoint hostnames", () => {
    const namespace = "n".repeat(63);
    const name = `s${"s".repeat(62)}`;
    const clusterId = "c".repeat(63);
    const cluster = exporter(clusterId, T1, { service: headless() });
    const desired = desiredState(observe([cluster], namespace, name), OPTIONS);
    const valid = conditionOf(exportOf(desired, clusterId), "Valid");
    assert.equal(valid.status, "True");
    assert.ok(valid.message.includes("hostnames longer than 40 characters"), valid.message);
    assert.equal(desired.imports.length, 1);
  });

  it("mentions a dotted cluster ID", () => {
    const desired = desiredState(observe([exporter("eu-1.prod", T1, { service: headless() })]), OPTIONS);
    assert.ok(conditionOf(exportOf(desired, "eu-1.prod"), "Valid").message.includes("contains a dot"));
  });

  it("says nothing for ClusterSetIP services", () => {
    const desired = desiredState(observe([exporter("eu-1.prod", T1)]), OPTIONS);
    assert.equal(conditionOf(exportOf(desired, "eu-1.prod"), "Valid").message, "");
  });
});

// ---------------------------------------------------------------------------------------------
// Stability
// ---------------------------------------------------------------------------------------------

describe("stability", () => {
  it("keeps condition transition times when nothing changed (no flapping across restarts)", () => {
    const clusters = [exporter("c1", T1), exporter("c2", T2, { service: headless() }), bystander("c3")];
    const first = desiredState(observe(clusters), { now: NOW });
    // Write the first result back, as the applier would, and reconcile again later.
    const written = clusters.map((cluster): ClusterObservation => {
      const exp = first.exports.find((e) => e.clusterId === cluster.clusterId);
      const imp = first.imports.find((i) => i.clusterId === cluster.clusterId);
      const next: ClusterObservation = { ...cluster };
      if (exp !== undefined && cluster.serviceExport !== undefined) {
        next.serviceExport = { ...cluster.serviceExport, status: { conditions: exp.conditions } };
      }
      if (imp !== undefined) next.serviceImport = imp.serviceImport;
      return next;
    });
    const second = desiredState(observe(written), { now: LATER });
    assert.deepEqual(second, first);
  });

  it("moves the transition time only for a condition whose status changed", () => {
    const first = desiredState(observe([exporter("c1", T1)]), { now: NOW });
    const conditions = first.exports[0]!.conditions;
    const changed = desiredState(
      observe([
        exporter("c1", T1, { serviceExport: { ...serviceExport(T1), status: { conditions } } }),
        exporter("c2", T2, { service: headless() }),
      ]),
      { now: LATER },
    );
    const exp = exportOf(changed, "c1");
    assert.deepEqual(conditionOf(exp, "Valid").lastTransitionTime, NOW);
    assert.deepEqual(conditionOf(exp, "Ready").lastTransitionTime, NOW);
    assert.deepEqual(conditionOf(exp, "Conflict").lastTransitionTime, LATER);
  });

  it("does not modify its input", () => {
    const observed = observe([
      exporter("c2", T2),
      exporter("c1", T1, { service: headless() }),
      bystander("c3"),
    ]);
    const snapshot = structuredClone(observed);
    desiredState(observed, OPTIONS);
    assert.deepEqual(observed, snapshot);
  });

  it("rejects unusable options and duplicate clusters", () => {
    assert.throws(
      () => desiredState(observe([]), { controllerName: "meridian.dev/mcs-controller" }),
      TypeError,
    );
    assert.throws(
      () => desiredState(observe([]), { controllerName: "endpointslice-controller.k8s.io" }),
      TypeError,
    );
    assert.throws(() => desiredState(observe([]), { maxEndpointsPerSlice: 0 }), TypeError);
    assert.throws(() => desiredState(observe([bystander("c1"), bystander("c1")]), OPTIONS), /appears twice/);
  });
});

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

const portPool = [
  { name: "http", protocol: "TCP", port: 80, targetPort: 8080 },
  { name: "http", protocol: "TCP", port: 8000, targetPort: 8000 },
  { name: "grpc", protocol: "TCP", port: 9090, targetPort: 9090 },
  { name: "dns", protocol: "UDP", port: 53, targetPort: 53 },
];

const clusterArb = (clusterId: string, index: number) =>
  fc
    .record({
      namespaceExists: fc.boolean(),
      kind: fc.constantFrom("ClusterIP", "NodePort", "Headless", "ExternalName", "none"),
      exported: fc.boolean(),
      created: fc.constantFrom(T1, T2, T3),
      portIndexes: fc.uniqueArray(fc.integer({ min: 0, max: portPool.length - 1 }), {
        minLength: 1,
        maxLength: 3,
      }),
      affinity: fc.constantFrom("None", "ClientIP"),
      dualStack: fc.boolean(),
      label: fc.constantFrom(undefined, "gold", "silver"),
      exportTo: fc.constantFrom(undefined, "c1", "c2,c3", ""),
      endpoints: fc.array(fc.record({ host: fc.integer({ min: 1, max: 6 }), ready: fc.boolean() }), {
        maxLength: 5,
      }),
      derivedIp: fc.boolean(),
    })
    .map((f): ClusterObservation => {
      const byName = new Map<string, (typeof portPool)[number]>();
      for (const i of f.portIndexes) {
        const port = portPool[i]!;
        if (!byName.has(port.name)) byName.set(port.name, port);
      }
      const ports = [...byName.values()];
      const families = f.dualStack ? ["IPv4", "IPv6"] : ["IPv4"];
      const spec: V1ServiceSpec = {
        type: f.kind === "Headless" ? "ClusterIP" : f.kind,
        ports,
        sessionAffinity: f.affinity,
        ipFamilies: families,
        ipFamilyPolicy: f.dualStack ? "PreferDualStack" : "SingleStack",
      };
      const observation: ClusterObservation = {
        clusterId,
        namespaceExists: f.namespaceExists || f.exported,
        endpointSlices: [
          endpointSlice(
            `${NAME}-${clusterId}-a`,
            f.endpoints.map((e) => ({ ip: `10.${index}.0.${e.host}`, ready: e.ready })),
            { ports: ports.map((p) => ({ name: p.name, port: p.targetPort, protocol: p.protocol })) },
          ),
          endpointSlice(
            `${NAME}-${clusterId}-b`,
            f.endpoints.map((e) => ({ ip: `fd00::${index}:${e.host}`, ready: e.ready })),
            {
              addressType: "IPv6",
              ports: ports.map((p) => ({ name: p.name, port: p.targetPort, protocol: p.protocol })),
            },
          ),
        ],
      };
      if (f.kind !== "none") observation.service = f.kind === "Headless" ? headless(spec) : service(spec);
      if (f.exported) {
        const options: Parameters<typeof serviceExport>[1] = {};
        if (f.label !== undefined) options.labels = { tier: f.label };
        if (f.exportTo !== undefined) options.exportTo = f.exportTo;
        observation.serviceExport = serviceExport(f.created, options);
      }
      if (f.derivedIp) {
        observation.derivedService = service(
          { clusterIPs: f.dualStack ? [`10.96.${index}.1`, `fd00::96:${index}`] : [`10.96.${index}.1`] },
          "derived",
        );
      }
      return observation;
    });

const observedArb = fc
  .tuple(clusterArb("c1", 1), clusterArb("c2", 2), clusterArb("c3", 3), clusterArb("c4", 4))
  .map((clusters) => observe(clusters));

function shuffled<T>(items: readonly T[], order: readonly number[]): T[] {
  return items
    .map((item, i) => ({ item, key: order[i % order.length] ?? 0, i }))
    .sort((a, b) => a.key - b.key || a.i - b.i)
    .map(({ item }) => item);
}

/** ClusterSetIP imports have a derived Service and aligned ips; Headless ones neither. */
function checkAddressing(imported: DesiredImport): void {
  const spec = imported.serviceImport.spec;
  const families = spec.ipFamilies ?? [];
  assert.ok(families.length >= 1 && families.length <= 2 && new Set(families).size === families.length);
  if (spec.type === "Headless") {
    assert.equal(spec.ips, undefined);
    assert.equal(imported.derivedService, undefined);
    return;
  }
  assert.ok(imported.derivedService);
  if (spec.ips === undefined) return;
  // Index-aligned with ipFamilies: a required conformance check.
  assert.equal(spec.ips.length, families.length);
  spec.ips.forEach((ip, i) => assert.equal(ip.includes(":") ? "IPv6" : "IPv4", families[i]));
}

/** Slices: unique short names, one listed source cluster each, only ports the import has. */
function checkSlices(imported: DesiredImport): void {
  const portNames = new Set(imported.serviceImport.spec.ports.map((p) => p.name ?? ""));
  const sources = new Set(imported.serviceImport.status?.clusters?.map((c) => c.cluster));
  const sliceNames = imported.endpointSlices.map((s) => s.metadata?.name ?? "");
  assert.equal(new Set(sliceNames).size, sliceNames.length);
  assert.ok(sliceNames.every((name) => name.length <= 63));
  for (const slice of imported.endpointSlices) {
    assert.ok(sources.has(sourceOf(slice) ?? ""), "a slice's source cluster is listed in status.clusters");
    assert.equal(slice.metadata?.labels?.["multicluster.kubernetes.io/service-name"], NAME);
    for (const port of slice.ports ?? []) assert.ok(portNames.has(port.name ?? ""), port.name);
  }
}

/** Invariants every desired import satisfies, whatever the input. */
function checkImportInvariants(observed: ObservedService, imported: DesiredImport): void {
  const cluster = observed.clusters.find((c) => c.clusterId === imported.clusterId);
  assert.equal(cluster?.namespaceExists, true);
  checkAddressing(imported);
  checkSlices(imported);
}

describe("properties", () => {
  it("the order of clusters and of their slices does not change the output", () => {
    fc.assert(
      fc.property(observedArb, fc.array(fc.integer(), { minLength: 4, maxLength: 4 }), (observed, order) => {
        const reordered: ObservedService = {
          ...observed,
          clusters: shuffled(observed.clusters, order).map((c) => ({
            ...c,
            endpointSlices: [...(c.endpointSlices ?? [])]
              .reverse()
              .map((s) => ({ ...s, endpoints: [...s.endpoints].reverse() })),
          })),
        };
        assert.deepEqual(desiredState(reordered, OPTIONS), desiredState(observed, OPTIONS));
      }),
    );
  });

  it("every output satisfies the MCS invariants", () => {
    fc.assert(
      fc.property(observedArb, (observed) => {
        const desired = desiredState(observed, OPTIONS);
        const valid = desired.exports.filter((e) => e.valid);
        assert.equal(
          desired.imports.length > 0,
          valid.some((e) => e.importedInto.length > 0),
        );
        // One Conflict verdict for the whole service, on every valid export.
        assert.ok(new Set(valid.map((e) => conditionOf(e, "Conflict").reason)).size <= 1);
        for (const imported of desired.imports) checkImportInvariants(observed, imported);
      }),
    );
  });
});

describe("a Service with no pods yet", () => {
  it("is imported with no endpoints: Kubernetes gives its slice null endpoints, which must not fail the reconcile", () => {
    const empty = { ...endpointSlice(`${NAME}-empty`, []), endpoints: null as unknown as V1Endpoint[] };
    const desired = desiredState(
      observe([exporter("c1", T1, { endpointSlices: [empty] }), bystander("c2")]),
      OPTIONS,
    );
    const imported = importIn(desired, "c2");
    assert.equal(imported.serviceImport.spec.type, "ClusterSetIP");
    assert.equal(
      imported.endpointSlices.flatMap((s) => s.endpoints ?? []).length,
      0,
      "no endpoints are imported from an empty slice",
    );
  });
});

describe("gateway mode", () => {
  const gateways = new Map([
    [
      "c2",
      {
        addresses: [{ address: "10.2.255.7", addressType: "IPv4" as const }],
        listenPorts: new Map([["http/TCP", 20001]]),
      },
    ],
  ]);
  const observed = (): ObservedService => ({
    ...observe([exporter("c1", T1), exporter("c2", T2), bystander("c3")]),
    endpointMode: { kind: "gateway", gateways },
  });

  it("points a gateway member's slices for other clusters at its gateway, on the allocated port, and keeps its own pods", () => {
    const desired = desiredState(observed(), OPTIONS);
    const inC2 = importIn(desired, "c2");
    const fromC1 = inC2.endpointSlices.find((s) => sourceOf(s) === "c1")!;
    assert.deepEqual(fromC1.endpoints, [{ addresses: ["10.2.255.7"], conditions: { ready: true } }]);
    assert.deepEqual(fromC1.ports, [{ name: "http", port: 20001, protocol: "TCP" }]);
    const fromC2 = inC2.endpointSlices.find((s) => sourceOf(s) === "c2")!;
    assert.deepEqual(
      fromC2.endpoints.map((e) => e.addresses[0]),
      ["10.2.0.1"],
    );
    assert.equal(
      inC2.serviceImport.metadata.annotations?.["gateway.meridian.dev/listen-ports"],
      "http/TCP=20001",
    );
  });

  it("leaves members without a gateway in pod mode", () => {
    const inC3 = importIn(desiredState(observed(), OPTIONS), "c3");
    assert.deepEqual(inC3.endpointSlices.map((s) => s.endpoints[0]!.addresses[0]).sort(), [
      "10.1.0.1",
      "10.2.0.1",
    ]);
    assert.equal(inC3.serviceImport.metadata.annotations?.["gateway.meridian.dev/listen-ports"], undefined);
  });

  it("marks the gateway endpoint not ready while the source has no ready endpoint", () => {
    const o = observed();
    o.clusters = [
      exporter("c1", T1, { endpointSlices: [endpointSlice("cart-x", [{ ip: "10.1.0.1", ready: false }])] }),
      exporter("c2", T2),
    ];
    const fromC1 = importIn(desiredState(o, OPTIONS), "c2").endpointSlices.find((s) => sourceOf(s) === "c1")!;
    assert.equal(fromC1.endpoints[0]!.conditions?.ready, false);
  });
});
