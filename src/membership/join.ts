/**
 * Joining and leaving a clusterset. `join` gives the controller a least-privilege identity in the
 * member (its own namespace, ServiceAccount, ClusterRole), stores only that identity in the hub,
 * and sets the member's ClusterProperties. `leave` removes everything Meridian wrote in the member
 * and the member's registration in the hub; the controller then withdraws its endpoints elsewhere.
 * Members never receive credentials to each other.
 */
import type { KubernetesObject, V1Secret } from "@kubernetes/client-node";
import { setTimeout as sleep } from "node:timers/promises";
import {
  ABOUT_API_VERSION,
  CLUSTER_ID_PROPERTY,
  CLUSTERSET_PROPERTY,
  MCS_API_VERSION,
  type ClusterProperty,
  type ServiceExport,
} from "../api/mcs.js";
import {
  CLUSTER_API_VERSION,
  DEFAULT_HUB_NAMESPACE,
  MEMBER_NAMESPACE,
  type Cluster,
} from "../api/meridian.js";
import { apiErrorMessage, type ClusterClient } from "../kube/client.js";
import { Applier } from "../kube/applier.js";
import { ApiError, RestClient, resourcePath, Resources, type ResourceRef } from "../kube/rest.js";
import { renderKubeconfig } from "../kube/kubeconfig.js";
import { UserError } from "../local/state.js";
import { DEFAULT_CONTROLLER_NAME } from "../controller/desired.js";
import { isDnsLabel, LABEL_MANAGED_BY } from "../controller/names.js";

export const CONTROLLER_IDENTITY = "meridian-controller";
const JOIN_FIELD_MANAGER = "meridian-join";
const MANAGED_BY_MERIDIAN = { [LABEL_MANAGED_BY]: "meridian" };

export interface JoinOptions {
  /** Name of the Cluster object in the hub. */
  name: string;
  /** Cluster ID; default: the member's existing cluster.clusterset.k8s.io, else `name`. */
  clusterID?: string;
  clustersetName: string;
  /** Admin access to the member (to create Meridian's identity there). */
  member: ClusterClient;
  /** Admin access to the hub. */
  hub: ClusterClient;
  hubNamespace?: string;
  /** API server URL the controller should use for the member; default: the member client's. */
  memberServer?: string;
  region?: string;
  zone?: string;
  gatewayAddresses?: string[];
  log?: (line: string) => void;
}

/** RBAC of the controller in a member: exactly what it reads and writes. */
export function controllerClusterRole(): KubernetesObject & { rules: object[] } {
  return {
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "ClusterRole",
    metadata: { name: CONTROLLER_IDENTITY, labels: MANAGED_BY_MERIDIAN },
    rules: [
      { apiGroups: [""], resources: ["namespaces"], verbs: ["get", "list", "watch"] },
      // Derived Services (the ClusterSetIP holders): created and removed by the controller.
      {
        apiGroups: [""],
        resources: ["services"],
        verbs: ["get", "list", "watch", "create", "patch", "update", "delete"],
      },
      {
        apiGroups: ["discovery.k8s.io"],
        resources: ["endpointslices"],
        verbs: ["get", "list", "watch", "create", "patch", "update", "delete"],
      },
      {
        apiGroups: ["multicluster.x-k8s.io"],
        resources: ["serviceexports"],
        verbs: ["get", "list", "watch"],
      },
      {
        apiGroups: ["multicluster.x-k8s.io"],
        resources: ["serviceexports/status"],
        verbs: ["get", "patch", "update"],
      },
      {
        apiGroups: ["multicluster.x-k8s.io"],
        resources: ["serviceimports"],
        verbs: ["get", "list", "watch", "create", "patch", "update", "delete"],
      },
      {
        apiGroups: ["multicluster.x-k8s.io"],
        resources: ["serviceimports/status"],
        verbs: ["get", "patch", "update"],
      },
      // Read by the dashboard, which reaches members with the controller's credentials.
      { apiGroups: ["meridian.dev"], resources: ["trafficpolicies"], verbs: ["get", "list", "watch"] },
    ],
  };
}

/**
 * In the member's own namespace only: the gateway peer list the controller maintains, and the
 * components' reports (gateway routing, traffic and query totals) the dashboard watches.
 */
export function controllerMemberNamespaceRbac(): KubernetesObject[] {
  const metadata = { name: CONTROLLER_IDENTITY, namespace: MEMBER_NAMESPACE, labels: MANAGED_BY_MERIDIAN };
  return [
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "Role",
      metadata,
      rules: [
        { apiGroups: [""], resources: ["configmaps"], verbs: ["get", "list", "watch", "create", "patch"] },
      ],
    } as KubernetesObject,
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "RoleBinding",
      metadata,
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: CONTROLLER_IDENTITY },
      subjects: [{ kind: "ServiceAccount", name: CONTROLLER_IDENTITY, namespace: MEMBER_NAMESPACE }],
    } as KubernetesObject,
  ];
}

async function readProperty(client: ClusterClient, name: string): Promise<string | undefined> {
  const p = await client.read<ClusterProperty & KubernetesObject>({
    apiVersion: ABOUT_API_VERSION,
    kind: "ClusterProperty",
    metadata: { name },
  });
  return p?.spec.value;
}

async function listClusters(hub: ClusterClient, namespace: string): Promise<Cluster[]> {
  const list = (await hub.custom.listNamespacedCustomObject({
    group: "meridian.dev",
    version: "v1alpha1",
    namespace,
    plural: "clusters",
  })) as {
    items: Cluster[];
  };
  return list.items;
}

const MEMBER_NAMESPACE_GONE_TIMEOUT_MS = 60_000;

/**
 * Waits until the member's Meridian namespace, being deleted by an earlier leave, is gone. Joining
 * while it terminates would hand the hub the old token, which dies with the namespace moments later.
 */
async function waitForMemberNamespaceGone(member: ClusterClient, log: (line: string) => void): Promise<void> {
  const deadline = Date.now() + MEMBER_NAMESPACE_GONE_TIMEOUT_MS;
  let said = false;
  for (;;) {
    const ns = await member.read({
      apiVersion: "v1",
      kind: "Namespace",
      metadata: { name: MEMBER_NAMESPACE },
    });
    if (!ns?.metadata?.deletionTimestamp) return;
    if (!said)
      log(`namespace ${MEMBER_NAMESPACE} in the member is still being deleted; waiting for it to go`);
    said = true;
    if (Date.now() > deadline) {
      throw new UserError(
        `namespace ${MEMBER_NAMESPACE} in the member has been terminating for over ${MEMBER_NAMESPACE_GONE_TIMEOUT_MS / 1000}s; ` +
          `see 'kubectl get namespace ${MEMBER_NAMESPACE} -o yaml' (status.conditions) in the member, then join again`,
      );
    }
    await sleep(250);
  }
}

/**
 * Waits for the member's token controller to fill the controller identity's token Secret. That
 * controller deletes a token Secret whose ServiceAccount it has not seen yet (its cache can lag the
 * ServiceAccount just created), so a Secret that vanishes is created again.
 */
async function waitForToken(
  member: ClusterClient,
  secret: KubernetesObject,
): Promise<{ token: string; ca: string }> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const s = await member.read<V1Secret & KubernetesObject>({
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: secret.metadata!.name!, namespace: MEMBER_NAMESPACE },
    });
    const token = s?.data?.["token"];
    if (token) return { token: Buffer.from(token, "base64").toString("utf8"), ca: s.data?.["ca.crt"] ?? "" };
    if (Date.now() > deadline) {
      throw new UserError(
        `the member's token controller did not fill Secret ${MEMBER_NAMESPACE}/${secret.metadata!.name!} within 60s; ` +
          `is kube-controller-manager running with the serviceaccount-token controller?`,
      );
    }
    if (!s) await member.apply(secret, JOIN_FIELD_MANAGER);
    await sleep(100);
  }
}

/** The cluster ID to join under, after every check that could refuse the join; nothing is written. */
async function checkedClusterId(opts: JoinOptions, hubNamespace: string): Promise<string> {
  if (!isDnsLabel(opts.name))
    throw new UserError(
      `invalid cluster name "${opts.name}": a DNS label (lower-case letters, digits, '-', at most 63)`,
    );
  let member: string | undefined;
  try {
    member = await readProperty(opts.member, CLUSTER_ID_PROPERTY);
  } catch (err) {
    throw new UserError(
      `cannot read the member's ClusterProperty ${CLUSTER_ID_PROPERTY}: ${apiErrorMessage(err)}. Are the MCS and ClusterProperty CRDs installed?`,
    );
  }
  const clusterID = opts.clusterID ?? member ?? opts.name;
  if (!isDnsLabel(clusterID))
    throw new UserError(
      `invalid cluster ID "${clusterID}": a DNS label (it is used in DNS names and labels)`,
    );
  if (member !== undefined && member !== clusterID) {
    throw new UserError(
      `the member's ${CLUSTER_ID_PROPERTY} is "${member}", not "${clusterID}": join it with --cluster-id ${member}`,
    );
  }
  const clusterset = await readProperty(opts.member, CLUSTERSET_PROPERTY);
  if (clusterset !== undefined && clusterset !== opts.clustersetName) {
    throw new UserError(`the member already belongs to clusterset "${clusterset}"; leave it there first`);
  }
  const existing = await listClusters(opts.hub, hubNamespace).catch(() => []);
  const clash = existing.find((c) => c.metadata.name === opts.name || c.spec.clusterID === clusterID);
  if (clash) {
    throw new UserError(
      `cluster ID "${clusterID}" (or name "${opts.name}") is already in the clusterset as Cluster ${hubNamespace}/${clash.metadata.name}; ` +
        `cluster IDs must be unique. Leave it first ('meridian leave ${clash.metadata.name}') or choose another --cluster-id`,
    );
  }
  return clusterID;
}

export async function join(opts: JoinOptions): Promise<Cluster> {
  const log = opts.log ?? (() => {});
  const hubNamespace = opts.hubNamespace ?? DEFAULT_HUB_NAMESPACE;
  const clusterID = await checkedClusterId(opts, hubNamespace);

  const m = opts.member;
  await waitForMemberNamespaceGone(m, (line) => log(`${opts.name}: ${line}`));
  log(`${opts.name}: creating Meridian's identity in the member`);
  await m.apply(
    {
      apiVersion: "v1",
      kind: "Namespace",
      metadata: { name: MEMBER_NAMESPACE, labels: MANAGED_BY_MERIDIAN },
    },
    JOIN_FIELD_MANAGER,
  );
  await m.apply(
    {
      apiVersion: "v1",
      kind: "ServiceAccount",
      metadata: { name: CONTROLLER_IDENTITY, namespace: MEMBER_NAMESPACE, labels: MANAGED_BY_MERIDIAN },
    },
    JOIN_FIELD_MANAGER,
  );
  await m.apply(controllerClusterRole(), JOIN_FIELD_MANAGER);
  for (const object of controllerMemberNamespaceRbac()) await m.apply(object, JOIN_FIELD_MANAGER);
  await m.apply(
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRoleBinding",
      metadata: { name: CONTROLLER_IDENTITY, labels: MANAGED_BY_MERIDIAN },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: CONTROLLER_IDENTITY },
      subjects: [{ kind: "ServiceAccount", name: CONTROLLER_IDENTITY, namespace: MEMBER_NAMESPACE }],
    } as KubernetesObject,
    JOIN_FIELD_MANAGER,
  );
  const tokenSecret = {
    apiVersion: "v1",
    kind: "Secret",
    type: "kubernetes.io/service-account-token",
    metadata: {
      name: `${CONTROLLER_IDENTITY}-token`,
      namespace: MEMBER_NAMESPACE,
      labels: MANAGED_BY_MERIDIAN,
      annotations: { "kubernetes.io/service-account.name": CONTROLLER_IDENTITY },
    },
  } as KubernetesObject;
  await m.apply(tokenSecret, JOIN_FIELD_MANAGER);
  const { token, ca } = await waitForToken(m, tokenSecret);

  for (const [name, value] of [
    [CLUSTER_ID_PROPERTY, clusterID],
    [CLUSTERSET_PROPERTY, opts.clustersetName],
  ] as const) {
    const prop: ClusterProperty = {
      apiVersion: ABOUT_API_VERSION,
      kind: "ClusterProperty",
      metadata: { name, labels: MANAGED_BY_MERIDIAN },
      spec: { value },
    };
    await m.apply(prop, JOIN_FIELD_MANAGER);
  }

  log(`${opts.name}: registering in the hub`);
  const hub = opts.hub;
  await hub.apply(
    { apiVersion: "v1", kind: "Namespace", metadata: { name: hubNamespace, labels: MANAGED_BY_MERIDIAN } },
    JOIN_FIELD_MANAGER,
  );
  const server = opts.memberServer ?? m.server;
  const caData = ca
    ? Buffer.from(ca, "base64")
    : Buffer.from(m.kubeConfig.getCurrentCluster()?.caData ?? "", "base64");
  const kubeconfig = renderKubeconfig([{ name: clusterID, server, caData, token }]);
  const secretName = `cluster-${opts.name}-credentials`;
  await hub.apply(
    {
      apiVersion: "v1",
      kind: "Secret",
      type: "Opaque",
      metadata: {
        name: secretName,
        namespace: hubNamespace,
        labels: { ...MANAGED_BY_MERIDIAN, "meridian.dev/cluster": opts.name },
      },
      data: { kubeconfig: Buffer.from(kubeconfig).toString("base64") },
    } as KubernetesObject,
    JOIN_FIELD_MANAGER,
  );
  const cluster: Cluster & KubernetesObject = {
    apiVersion: CLUSTER_API_VERSION,
    kind: "Cluster",
    metadata: { name: opts.name, namespace: hubNamespace },
    spec: {
      clusterID,
      credentials: { secretName },
      ...(opts.gatewayAddresses?.length ? { gatewayAddresses: opts.gatewayAddresses } : {}),
      ...(opts.region || opts.zone
        ? {
            locality: {
              ...(opts.region ? { region: opts.region } : {}),
              ...(opts.zone ? { zone: opts.zone } : {}),
            },
          }
        : {}),
    },
  };
  return hub.apply(cluster, JOIN_FIELD_MANAGER);
}

export interface LeaveOptions {
  name: string;
  hub: ClusterClient;
  /** Admin access to the member; without it only the hub registration is removed. */
  member?: ClusterClient;
  hubNamespace?: string;
  controllerName?: string;
  log?: (line: string) => void;
}

/** Deletes every object of a resource (all namespaces) matching a label selector. */
async function deleteAllLabelled(
  rest: RestClient,
  resource: ResourceRef,
  labelSelector: string,
): Promise<void> {
  const list = await rest.request<{ items: KubernetesObject[] }>("GET", resourcePath(resource), {
    query: { labelSelector },
  });
  for (const item of list.items) {
    await rest
      .request("DELETE", resourcePath(resource, item.metadata?.namespace, item.metadata?.name))
      .catch((err: unknown) => {
        if (!(err instanceof ApiError && err.code === 404)) throw err;
      });
  }
}

export async function leave(opts: LeaveOptions): Promise<{ memberCleaned: boolean }> {
  const log = opts.log ?? (() => {});
  const hubNamespace = opts.hubNamespace ?? DEFAULT_HUB_NAMESPACE;
  const cluster = await opts.hub.read<Cluster & KubernetesObject>({
    apiVersion: CLUSTER_API_VERSION,
    kind: "Cluster",
    metadata: { name: opts.name, namespace: hubNamespace },
  });
  if (!cluster) {
    const known =
      (await listClusters(opts.hub, hubNamespace).catch(() => [])).map((c) => c.metadata.name).join(", ") ||
      "none";
    throw new UserError(`no Cluster "${opts.name}" in the hub (joined clusters: ${known})`);
  }
  log(`${opts.name}: removing its registration from the hub`);
  await opts.hub.deleteIfExists({
    apiVersion: CLUSTER_API_VERSION,
    kind: "Cluster",
    metadata: { name: opts.name, namespace: hubNamespace },
  });
  await opts.hub.deleteIfExists({
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name: cluster.spec.credentials.secretName, namespace: hubNamespace },
  });
  if (!opts.member) return { memberCleaned: false };

  const m = opts.member;
  const owned = `${LABEL_MANAGED_BY}=${opts.controllerName ?? DEFAULT_CONTROLLER_NAME}`;
  log(`${opts.name}: removing everything Meridian wrote in the member`);
  // The controller stops writing to a member once its Cluster is gone; clean up twice, a second
  // apart, in case a write was in flight.
  const rest = new RestClient(opts.name, m.kubeConfig);
  try {
    for (let pass = 0; pass < 2; pass++) {
      if (pass > 0) await sleep(1000);
      await deleteAllLabelled(rest, Resources.serviceImports, owned);
      await deleteAllLabelled(rest, Resources.endpointSlices, owned);
      await deleteAllLabelled(rest, Resources.services, owned);
    }
    // Give up the export conditions the controller wrote: apply an empty set as their manager.
    const applier = new Applier(rest, "meridian-controller");
    const exports = await rest.request<{ items: (ServiceExport & KubernetesObject)[] }>(
      "GET",
      resourcePath(Resources.serviceExports),
    );
    for (const e of exports.items) {
      await applier.applyStatus(
        {
          apiVersion: MCS_API_VERSION,
          kind: "ServiceExport",
          metadata: { name: e.metadata.name, namespace: e.metadata.namespace },
        },
        { conditions: [] },
        e.status,
      );
    }
  } finally {
    rest.close();
  }
  for (const name of [CLUSTERSET_PROPERTY, CLUSTER_ID_PROPERTY]) {
    const p = await m.read<ClusterProperty & KubernetesObject>({
      apiVersion: ABOUT_API_VERSION,
      kind: "ClusterProperty",
      metadata: { name },
    });
    if (p && (name === CLUSTERSET_PROPERTY || p.metadata.labels?.[LABEL_MANAGED_BY] === "meridian"))
      await m.deleteIfExists(p);
  }
  await m.deleteIfExists({
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "ClusterRoleBinding",
    metadata: { name: CONTROLLER_IDENTITY },
  });
  await m.deleteIfExists({
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "ClusterRole",
    metadata: { name: CONTROLLER_IDENTITY },
  });
  await m.deleteIfExists({ apiVersion: "v1", kind: "Namespace", metadata: { name: MEMBER_NAMESPACE } });
  // Its ServiceAccount, and so the token the hub held, lives until the namespace is gone.
  await waitForMemberNamespaceGone(m, (line) => log(`${opts.name}: ${line}`));
  return { memberCleaned: true };
}
