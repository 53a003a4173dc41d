/**
 * Meridian's `clusterset.local` DNS server core: an index fed by informers ({@link ClusterSetZone}),
 * a pure resolver ({@link resolve}), a bytes-to-bytes handler ({@link handleDnsMessage}) and a UDP/TCP
 * listener ({@link startDnsServer}). No Kubernetes client code lives here.
 */
export { ClusterSetZone } from "./zone.js";
export type {
  ClusterSetZoneOptions,
  IndexedAddress,
  IndexedImport,
  IndexedPort,
  IndexedSlice,
  ServiceEntry,
  ZoneStats,
  ZoneView,
} from "./zone.js";
export {
  DEFAULT_RESOLVE_OPTIONS,
  DNS_SCHEMA_VERSION,
  isInZone,
  resolve,
  validateResolveOptions,
} from "./resolve.js";
export type { ResolveOptions } from "./resolve.js";
export { RRType, Rcode } from "./records.js";
export type { DnsRecord, Question, Resolution } from "./records.js";
export { DEFAULT_MAX_UDP_PAYLOAD, handleDnsMessage } from "./wire.js";
export type { DnsForwarder, DnsHandlerOptions, DnsReply, QueryInfo, Transport } from "./wire.js";
export { startDnsServer } from "./server.js";
export type { DnsQueryEvent, DnsServerHandle, DnsServerObserver, DnsServerOptions } from "./server.js";
