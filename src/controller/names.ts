/**
 * Deterministic names, well-known label keys and DNS/label validation for the objects the
 * mcs-controller writes. Everything here is pure and cheap: it runs for every reconcile of every
 * multi-cluster service.
 */
import { createHash } from "node:crypto";

/** Standard Kubernetes label: which tool manages an object. Meridian's ownership label. */
export const LABEL_MANAGED_BY = "app.kubernetes.io/managed-by";
/**
 * Meridian label carrying the multi-cluster service name on every object Meridian writes for it
 * (ServiceImport, derived Service, MCS EndpointSlices), so the applier can find "ours, for this
 * key" with one label selector per kind.
 */
export const LABEL_MERIDIAN_SERVICE_NAME = "multicluster.meridian.dev/service-name";
/** Standard label kube-proxy uses to attach an EndpointSlice to a Service. */
export const LABEL_KUBERNETES_SERVICE_NAME = "kubernetes.io/service-name";
/** Annotation on a ServiceImport naming its derived Service (the mcs-api reference convention). */
export const ANNOTATION_DERIVED_SERVICE = "multicluster.kubernetes.io/derived-service";
/**
 * ServiceExport annotation restricting the clusters the export is imported into: a comma-separated
 * list of cluster IDs. Absent means every cluster; present and empty means none.
 */
export const ANNOTATION_EXPORT_TO = "multicluster.meridian.dev/export-to";

/** The DNS zone of multi-cluster services. */
export const CLUSTERSET_ZONE = "clusterset.local";
/** RFC 1035 limit on a name's text form (without the trailing dot). */
export const MAX_DNS_NAME_LENGTH = 253;
/** RFC 1035 limit on one label; also the limit on a Kubernetes label value and object-name label. */
export const MAX_DNS_LABEL_LENGTH = 63;

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const QUALIFIED_NAME_PART = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const BASE32_HEX_ALPHABET = "0123456789abcdefghijklmnopqrstuv";

/** The work-queue key of a multi-cluster service: `namespace/name`. */
export function serviceKey(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}

/** Splits a key made by {@link serviceKey}; undefined when it is not of that form. */
export function parseServiceKey(key: string): { namespace: string; name: string } | undefined {
  const slash = key.indexOf("/");
  if (slash <= 0 || slash === key.length - 1 || key.indexOf("/", slash + 1) !== -1) return undefined;
  return { namespace: key.slice(0, slash), name: key.slice(slash + 1) };
}

/**
 * The first `length` characters of the lower-case, unpadded base32hex (RFC 4648 §7) encoding of
 * SHA-256(`input`). Only as many digest bits as needed are encoded.
 */
export function base32HexHash(input: string, length: number): string {
  const digest = createHash("sha256").update(input).digest();
  let out = "";
  let buffer = 0;
  let bufferedBits = 0;
  for (const byte of digest) {
    buffer = ((buffer << 8) | byte) & 0xffff;
    bufferedBits += 8;
    while (bufferedBits >= 5) {
      bufferedBits -= 5;
      out += BASE32_HEX_ALPHABET[(buffer >> bufferedBits) & 31];
      if (out.length === length) return out;
    }
  }
  return out;
}

/**
 * Name of the derived ("shadow") Service that gives a ClusterSetIP import its VIP in an importing
 * cluster: `derived-` + 10 base32hex characters of SHA-256(`namespace/name`). Identical to the
 * mcs-api reference controller's name, so tools that know that convention find it; fixed length,
 * so it is a valid Service name whatever the length of the exported name.
 */
export function derivedServiceName(namespace: string, name: string): string {
  return `derived-${base32HexHash(serviceKey(namespace, name), 10)}`;
}

/** RFC 1123 DNS label (namespaces, cluster names): lower-case alphanumerics and `-`, ≤ 63. */
export function isDnsLabel(value: string): boolean {
  return value.length <= MAX_DNS_LABEL_LENGTH && DNS1123_LABEL.test(value);
}

/** RFC 1035 DNS label (Service names): like {@link isDnsLabel} but starting with a letter. */
export function isDns1035Label(value: string): boolean {
  return value.length <= MAX_DNS_LABEL_LENGTH && DNS1035_LABEL.test(value);
}

/** RFC 1123 DNS subdomain: dot-separated DNS labels, ≤ 253 in total. */
export function isDnsSubdomain(value: string): boolean {
  return value.length <= MAX_DNS_NAME_LENGTH && value.split(".").every((label) => DNS1123_LABEL.test(label));
}

/** A valid Kubernetes label value (may be empty). */
export function isLabelValue(value: string): boolean {
  return value.length <= MAX_DNS_LABEL_LENGTH && LABEL_VALUE.test(value);
}

/** A valid Kubernetes label or annotation key: `[prefix/]name`, prefix a DNS subdomain. */
export function isQualifiedName(key: string): boolean {
  const slash = key.indexOf("/");
  const prefix = slash === -1 ? undefined : key.slice(0, slash);
  const name = slash === -1 ? key : key.slice(slash + 1);
  if (prefix !== undefined && (prefix.length === 0 || !isDnsSubdomain(prefix))) return false;
  return name.length <= MAX_DNS_LABEL_LENGTH && QUALIFIED_NAME_PART.test(name);
}

/** Lower-cases and replaces anything that may not appear in an object name by `-`. */
function nameFragment(value: string): string {
  return value.toLowerCase().replace(/[^a-z0-9-]+/g, "-");
}

/**
 * Deterministic name of an MCS EndpointSlice, ≤ 63 characters: a readable
 * `<service>-<source-cluster>` prefix (truncated as needed) and 10 base32hex characters of a hash of
 * everything that makes the slice distinct (namespace, service, source cluster and the caller's
 * `discriminator`, e.g. address type, port set and chunk index). The hash makes names unique even
 * when truncation makes prefixes equal.
 */
export function endpointSliceName(
  namespace: string,
  serviceName: string,
  sourceClusterId: string,
  discriminator: string,
): string {
  const hash = base32HexHash(`${namespace}/${serviceName}\n${sourceClusterId}\n${discriminator}`, 10);
  const prefixBudget = MAX_DNS_LABEL_LENGTH - hash.length - 1;
  const prefix = `${nameFragment(serviceName)}-${nameFragment(sourceClusterId)}`
    .slice(0, prefixBudget)
    .replace(/^-+|-+$/g, "");
  return prefix === "" ? hash : `${prefix}-${hash}`;
}

/**
 * The longest endpoint hostname for which the per-endpoint name
 * `<hostname>.<clusterid>.<service>.<namespace>.svc.clusterset.local` stays within 253 characters;
 * zero or negative when no hostname fits.
 */
export function maxEndpointHostnameLength(namespace: string, serviceName: string, clusterId: string): number {
  const fixed = `.${clusterId}.${serviceName}.${namespace}.svc.${CLUSTERSET_ZONE}`.length;
  return Math.min(MAX_DNS_LABEL_LENGTH, MAX_DNS_NAME_LENGTH - fixed);
}
