/**
 * Which namespace a local client connection comes from, by its source address: the pods of this
 * gateway's own cluster, watched through its API server. The importing gateway sends the answer to
 * the exporting one, so access rules can name namespaces (`east/web`); an address it cannot
 * attribute to exactly one namespace gets none, and namespace-scoped rules then refuse.
 *
 * This holds only while clients' source addresses reach the gateway unchanged: true for the local
 * clusterset and for kube-proxy without masquerading pod traffic; a CNI or proxy that SNATs pod
 * traffic to a node address leaves every connection without a namespace.
 */
import type { KubernetesObject, V1Pod } from "@kubernetes/client-node";
import { objectKey, Reflector } from "../kube/reflector.js";
import { Resources, type RestClient } from "../kube/rest.js";

/** Answers which namespace a client address belongs to, if any one. */
export interface SourceNamespaces {
  namespaceOf(address: string): string | undefined;
}

/** What the index keeps of a pod: its namespace and the addresses only it uses. */
export interface PodAddresses {
  key: string;
  namespace: string;
  addresses: string[];
}

/**
 * The addresses that identify a pod. Host-network pods share their node's address with everything
 * else on the node, and finished pods may have handed theirs on, so neither identifies anyone.
 */
export function podAddresses(pod: V1Pod): PodAddresses | undefined {
  const namespace = pod.metadata?.namespace;
  const status = pod.status ?? {};
  if (!namespace || pod.spec?.hostNetwork || status.phase === "Succeeded" || status.phase === "Failed")
    return undefined;
  const addresses = new Set(
    [status.podIP, ...(status.podIPs ?? []).map((p) => p.ip)].filter((a): a is string => !!a),
  );
  if (addresses.size === 0) return undefined;
  return { key: objectKey(pod), namespace, addresses: [...addresses] };
}

/** `::ffff:10.0.0.5` (an IPv4 client on a dual-stack socket) is `10.0.0.5`. */
export function normalizeAddress(address: string): string {
  return address.startsWith("::ffff:") && address.includes(".") ? address.slice(7) : address.toLowerCase();
}

/** Address → namespace, kept incrementally from pod changes; ambiguous addresses answer nothing. */
export class AddressIndex implements SourceNamespaces {
  private readonly byAddress = new Map<string, Map<string, string>>();
  private readonly byPod = new Map<string, PodAddresses>();

  set(pod: PodAddresses): void {
    this.remove(pod.key);
    this.byPod.set(pod.key, pod);
    for (const a of pod.addresses) {
      const address = normalizeAddress(a);
      let owners = this.byAddress.get(address);
      if (!owners) this.byAddress.set(address, (owners = new Map<string, string>()));
      owners.set(pod.key, pod.namespace);
    }
  }

  remove(key: string): void {
    const pod = this.byPod.get(key);
    if (!pod) return;
    this.byPod.delete(key);
    for (const a of pod.addresses) {
      const address = normalizeAddress(a);
      const owners = this.byAddress.get(address);
      owners?.delete(key);
      if (owners?.size === 0) this.byAddress.delete(address);
    }
  }

  namespaceOf(address: string): string | undefined {
    const owners = this.byAddress.get(normalizeAddress(address));
    if (!owners) return undefined;
    const namespaces = new Set(owners.values());
    // Two live pods claiming one address (a stale status during IP reuse): trust neither.
    return namespaces.size === 1 ? [...namespaces][0] : undefined;
  }

  get size(): number {
    return this.byAddress.size;
  }
}

/** Keeps only what the index needs, so a large cluster's pods cost little memory. */
function slimPod(obj: KubernetesObject): V1Pod {
  const pod = obj as V1Pod;
  return {
    metadata: {
      name: pod.metadata?.name,
      namespace: pod.metadata?.namespace,
      resourceVersion: pod.metadata?.resourceVersion,
    },
    spec: { containers: [], ...(pod.spec?.hostNetwork ? { hostNetwork: true } : {}) },
    status: { phase: pod.status?.phase, podIP: pod.status?.podIP, podIPs: pod.status?.podIPs },
  };
}

/** The member's pods, watched, as an AddressIndex. */
export class PodNamespaceSource implements SourceNamespaces {
  private readonly index = new AddressIndex();
  private readonly pods: Reflector<V1Pod>;

  constructor(rest: RestClient) {
    this.pods = new Reflector<V1Pod>(rest, Resources.pods, {
      transform: slimPod,
      onEvent: ({ type, object }) => {
        const entry = type === "DELETED" ? undefined : podAddresses(object);
        if (entry) this.index.set(entry);
        else this.index.remove(objectKey(object));
      },
    });
  }

  namespaceOf(address: string): string | undefined {
    return this.index.namespaceOf(address);
  }

  async start(): Promise<void> {
    this.pods.start();
    await this.pods.waitForSync(60_000);
  }

  stop(): void {
    void this.pods.stop();
  }
}
