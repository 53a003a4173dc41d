/**
 * The `clusterset.local` resolver: a pure function from (zone index, question, options) to a DNS
 * answer. It reproduces the CoreDNS `multicluster` behaviour described in `mcs-api.md` §4.2 — grammar,
 * NXDOMAIN vs NODATA, SRV weights and de-duplication, glue, SOA in negative answers, SERVFAIL before
 * sync — with the deliberate differences listed in `README.md` (search for "Differs from CoreDNS").
 *
 * Hot path notes: one lower-casing and one split per query; ClusterSetIP answers scan at most two
 * VIPs; headless answers walk the pre-parsed ready addresses once. No text parsing happens here.
 */
import { parseIp } from "./ip.js";
import type { ParsedIp } from "./ip.js";
import { RRType, Rcode } from "./records.js";
import type { AddressRecord, DnsRecord, Question, Resolution, SoaRecord, SrvRecord } from "./records.js";
import type {
  IndexedAddress,
  IndexedImport,
  IndexedPort,
  IndexedSlice,
  ServiceEntry,
  ZoneView,
} from "./zone.js";

/** Resolver settings. */
export interface ResolveOptions {
  /** Zone apex, e.g. `clusterset.local` (trailing dot optional, matched case-insensitively). */
  readonly zone: string;
  /** TTL of A/AAAA/SRV/NS answers and the SOA minimum. CoreDNS default 5; 0–3600 allowed. */
  readonly ttl: number;
  /**
   * Addresses of this DNS server as clients reach it. When set, `NS <zone>` and `A/AAAA ns.dns.<zone>`
   * are answered with them (CoreDNS answers its own Service IPs there). When unset, `NS` at the
   * apex is NODATA and `ns.dns.<zone>` does not exist.
   */
  readonly nameservers?: readonly string[];
}

/** CoreDNS defaults: zone `clusterset.local`, TTL 5 s. */
export const DEFAULT_RESOLVE_OPTIONS: ResolveOptions = Object.freeze({ zone: "clusterset.local", ttl: 5 });

/** The schema version CoreDNS serves at `dns-version.<zone>` (the MCS spec says "1.0.0"; see README). */
export const DNS_SCHEMA_VERSION = "1.1.0";
/** TTL of the `dns-version` TXT record (CoreDNS and the spec's example). */
export const DNS_VERSION_TTL = 28800;
const MAX_TTL = 3600;
const MAX_SOA_TTL = 300;
const SOA_REFRESH = 7200;
const SOA_RETRY = 1800;
const SOA_EXPIRE = 86400;
const SRV_PRIORITY = 0;
/** Longest presentation name (without the final dot) that fits the 255-octet wire limit. */
const MAX_NAME_LENGTH = 253;
const DOT = 46;
const BACKSLASH = 92;

const NONE: readonly DnsRecord[] = Object.freeze([]);
const REFUSED: Resolution = Object.freeze({
  rcode: Rcode.REFUSED,
  aa: false,
  answers: NONE,
  authority: NONE,
  additional: NONE,
});

interface CompiledOptions {
  readonly zoneLower: string;
  readonly ttl: number;
  readonly soaTtl: number;
  readonly nameservers: readonly ParsedIp[];
}

const compiledOptions = new WeakMap<ResolveOptions, CompiledOptions>();

/**
 * Validates resolver options and throws a `RangeError`/`TypeError` for bad values. {@link resolve}
 * calls it lazily (once per options object); call it at start-up to fail fast.
 */
export function validateResolveOptions(options: ResolveOptions): void {
  compile(options);
}

function compile(options: ResolveOptions): CompiledOptions {
  const cached = compiledOptions.get(options);
  if (cached) return cached;
  const { ttl } = options;
  if (!Number.isInteger(ttl) || ttl < 0 || ttl > MAX_TTL) {
    throw new RangeError(`DNS ttl must be an integer between 0 and ${MAX_TTL}, got ${ttl}`);
  }
  const zoneLower = trimFinalDot(options.zone).toLowerCase();
  if (zoneLower === "" || zoneLower.includes("\\")) {
    throw new TypeError(`DNS zone must be a plain domain name, got "${options.zone}"`);
  }
  const nameservers = (options.nameservers ?? []).map((text) => {
    const ip = parseIp(text);
    if (!ip) throw new TypeError(`nameserver address "${text}" is not an IP address`);
    return ip;
  });
  const compiled = { zoneLower, ttl, soaTtl: Math.min(MAX_SOA_TTL, ttl), nameservers };
  compiledOptions.set(options, compiled);
  return compiled;
}

/**
 * Whether `name` is the zone apex or below it (case-insensitive, presentation format).
 * The wire layer uses it to decide between answering and forwarding.
 */
export function isInZone(name: string, zone: string): boolean {
  return relativeLength(trimFinalDot(name).toLowerCase(), trimFinalDot(zone).toLowerCase()) >= 0;
}

/**
 * Answers one question from the zone index. Pure: the result depends only on the arguments.
 *
 * Out-of-zone names and zone transfers get REFUSED (not authoritative); everything else is
 * authoritative: NOERROR with records, NODATA (NOERROR, no answers, SOA in authority), NXDOMAIN (SOA
 * in authority), or SERVFAIL instead of NXDOMAIN while the zone is not synced.
 */
export function resolve(
  zone: ZoneView,
  question: Question,
  options: ResolveOptions = DEFAULT_RESOLVE_OPTIONS,
): Resolution {
  const opts = compile(options);
  const owner = trimFinalDot(question.name);
  const lower = owner.toLowerCase();
  const relative = relativeLength(lower, opts.zoneLower);
  if (relative < 0 || question.type === RRType.AXFR || question.type === RRType.IXFR) return REFUSED;
  const ctx: QueryContext = {
    zone,
    opts,
    owner,
    zoneAsAsked: owner.slice(owner.length - opts.zoneLower.length),
  };
  const target = classify(lower, relative, zone);
  return finish(ctx, answer(ctx, target, question.type));
}

/** Outcome before SOA/SERVFAIL decoration: records, or one of the two negative kinds. */
type Outcome =
  | { readonly kind: "records"; readonly answers: DnsRecord[]; readonly additional: readonly DnsRecord[] }
  | { readonly kind: "nodata" }
  | { readonly kind: "nxdomain" };

const NODATA_OUTCOME: Outcome = Object.freeze({ kind: "nodata" });
const NXDOMAIN_OUTCOME: Outcome = Object.freeze({ kind: "nxdomain" });

interface QueryContext {
  readonly zone: ZoneView;
  readonly opts: CompiledOptions;
  /** The question name as asked (case preserved), used as owner of answers. */
  readonly owner: string;
  /** The zone suffix of the question, case preserved: CoreDNS echoes it in SOA and SRV targets. */
  readonly zoneAsAsked: string;
}

/** `_port._proto` (either may be "" = any) or `<hostname>.<clusterid>`, already lower case. */
interface NameFilter {
  readonly port: string;
  readonly protocol: string;
  readonly hostname: string;
  readonly clusterId: string;
  readonly endpoint: boolean;
}

const NO_FILTER: NameFilter = Object.freeze({
  port: "",
  protocol: "",
  hostname: "",
  clusterId: "",
  endpoint: false,
});

type NameTarget =
  | { readonly kind: "apex" }
  /** Names that exist but own nothing: `svc`, `pod`, `<existing-ns>.svc`. */
  | { readonly kind: "empty" }
  | { readonly kind: "missing" }
  | { readonly kind: "dns-version" }
  | { readonly kind: "nameserver" }
  | {
      readonly kind: "service";
      readonly entry: ServiceEntry;
      readonly serviceImport: IndexedImport;
      readonly filter: NameFilter;
    };

const APEX: NameTarget = Object.freeze({ kind: "apex" });
const EMPTY: NameTarget = Object.freeze({ kind: "empty" });
const MISSING: NameTarget = Object.freeze({ kind: "missing" });
const DNS_VERSION: NameTarget = Object.freeze({ kind: "dns-version" });
const NAMESERVER: NameTarget = Object.freeze({ kind: "nameserver" });

/**
 * Maps a name to what it denotes, following CoreDNS's right-to-left grammar:
 * `[<a>.<b>.]<service>.<namespace>.svc.<zone>`, where `<a>.<b>` is `_port._proto` when either label
 * starts with `_`, else `<hostname>.<clusterid>`. Exactly zero or two extra labels are valid.
 */
function classify(lower: string, relative: number, zone: ZoneView): NameTarget {
  if (relative === 0) return APEX;
  const prefix = lower.slice(0, relative);
  // Every indexed name is letters, digits, '-' and '_'; an escaped byte can never match one.
  if (prefix.includes("\\")) return MISSING;
  const labels = prefix.split(".");
  if (labels.length === 1) return classifyTopLabel(prefix);
  // The SOA's mname exists even when no addresses are configured for it (CoreDNS: NODATA, not NXDOMAIN).
  if (prefix === "ns.dns") return NAMESERVER;
  return classifyServiceName(labels, zone);
}

/** The only single labels that exist below the apex. */
function classifyTopLabel(label: string): NameTarget {
  if (label === "svc" || label === "pod") return EMPTY;
  return label === "dns-version" ? DNS_VERSION : MISSING;
}

/** `[<a>.<b>.]<service>.<namespace>.svc` — labels are read from the right. */
function classifyServiceName(labels: readonly string[], zone: ZoneView): NameTarget {
  const count = labels.length;
  const namespace = labels[count - 2] ?? "";
  // Pod records are not served in the multicluster zone (CoreDNS: pods disabled there), so anything
  // below `pod` is NXDOMAIN, like any label other than `svc`.
  if (labels[count - 1] !== "svc" || !zone.hasNamespace(namespace)) return MISSING;
  if (count === 2) return EMPTY;
  // One extra label would be `<hostname>` without a cluster id (no match in CoreDNS); three or more
  // are too long. Either way: NXDOMAIN.
  if (count !== 3 && count !== 5) return MISSING;
  const entry = zone.service(namespace, labels[count - 3] ?? "");
  const serviceImport = entry?.serviceImport;
  if (!entry || !serviceImport) return MISSING;
  const filter = count === 3 ? NO_FILTER : parseFilter(labels[0] ?? "", labels[1] ?? "");
  return { kind: "service", entry, serviceImport, filter };
}

function parseFilter(first: string, second: string): NameFilter {
  if (first.startsWith("_") || second.startsWith("_")) {
    return {
      port: stripUnderscore(first),
      protocol: stripUnderscore(second),
      hostname: "",
      clusterId: "",
      endpoint: false,
    };
  }
  return { port: "", protocol: "", hostname: first, clusterId: second, endpoint: true };
}

/*
 * Per-qtype dispatch. Spec vs CoreDNS: bare-name SRV (not in the MCS spec, used by conformance) is
 * served like `_port._proto` SRV with every port matching. Deliberate differences from CoreDNS
 * (README "Differs from CoreDNS" 1–2): a name that exists is never NXDOMAIN (CoreDNS answers NXDOMAIN
 * for TXT at names without A/AAAA — the apex, `svc`, `<ns>.svc` — and for non-TXT at dns-version,
 * which would make RFC 8020 resolvers deny the names below), and NS at the apex needs configured
 * nameserver addresses.
 */
function answer(ctx: QueryContext, target: NameTarget, qtype: number): Outcome {
  switch (qtype) {
    case RRType.A:
    case RRType.AAAA:
    case RRType.SRV:
      return answerRecords(ctx, target, qtype);
    case RRType.TXT:
      if (target.kind === "dns-version") {
        return records([
          { type: RRType.TXT, name: ctx.owner, ttl: DNS_VERSION_TTL, text: DNS_SCHEMA_VERSION },
        ]);
      }
      return existence(ctx, target);
    case RRType.SOA:
      // CoreDNS answers SOA below the apex with NODATA whether or not the name exists. Either way the
      // client learns the zone from the SOA in authority, which is what SOA queries are for.
      return target.kind === "apex" ? records([soaRecord(ctx)]) : NODATA_OUTCOME;
    case RRType.NS:
      return target.kind === "apex" && ctx.opts.nameservers.length > 0
        ? nameserverRecords(ctx)
        : existence(ctx, target);
    default:
      return existence(ctx, target);
  }
}

function answerRecords(ctx: QueryContext, target: NameTarget, qtype: number): Outcome {
  switch (target.kind) {
    case "missing":
      return NXDOMAIN_OUTCOME;
    case "nameserver":
      return qtype === RRType.SRV ? NODATA_OUTCOME : records(addressRecords(ctx.owner, ctx, qtype));
    case "service": {
      const answers: DnsRecord[] = [];
      const additional: DnsRecord[] = [];
      if (!collectService(ctx, target, qtype, answers, additional)) return NXDOMAIN_OUTCOME;
      return answers.length > 0 ? { kind: "records", answers, additional } : NODATA_OUTCOME;
    }
    case "apex":
    case "empty":
    case "dns-version":
      return NODATA_OUTCOME;
  }
}

/**
 * NODATA when the name exists, else NXDOMAIN. Like CoreDNS, a service name "exists" when a hidden A
 * lookup does not fail with a name error (so headless services with only IPv6 endpoints exist too).
 */
function existence(ctx: QueryContext, target: NameTarget): Outcome {
  if (target.kind === "missing") return NXDOMAIN_OUTCOME;
  if (target.kind !== "service") return NODATA_OUTCOME;
  return collectService(ctx, target, 0, [], []) ? NODATA_OUTCOME : NXDOMAIN_OUTCOME;
}

/**
 * Collects A/AAAA/SRV records (qtype 0: only decide existence). Returns false when CoreDNS would
 * report a name error: no port of the import matches the filter (ClusterSetIP — so an import with
 * zero ports is NXDOMAIN), or no ready endpoint address × matching slice port (headless/endpoint).
 */
function collectService(
  ctx: QueryContext,
  target: Extract<NameTarget, { kind: "service" }>,
  qtype: number,
  answers: DnsRecord[],
  additional: DnsRecord[],
): boolean {
  const { serviceImport, filter } = target;
  // Spec vs CoreDNS: the spec defines `<hostname>.<clusterid>` names for headless services only;
  // CoreDNS answers them from the slices of ClusterSetIP imports too, and so do we.
  if (serviceImport.headless || filter.endpoint) {
    return collectEndpoints(ctx, target, qtype, answers, additional);
  }
  return collectVirtualIps(ctx, serviceImport, filter, qtype, answers, additional);
}

function collectVirtualIps(
  ctx: QueryContext,
  serviceImport: IndexedImport,
  filter: NameFilter,
  qtype: number,
  answers: DnsRecord[],
  additional: DnsRecord[],
): boolean {
  const matchingPorts = countMatchingPorts(serviceImport.ports, filter);
  if (matchingPorts === 0) return false;
  if (qtype === RRType.A || qtype === RRType.AAAA) {
    const family = qtype === RRType.A ? 4 : 6;
    for (const ip of serviceImport.ips) {
      if (ip.family === family && !hasAddress(answers, ip.key))
        answers.push(addressRecord(ctx.owner, ctx.opts.ttl, ip));
    }
  } else if (qtype === RRType.SRV && serviceImport.ips.length > 0) {
    addVirtualIpSrv(ctx, serviceImport, filter, matchingPorts, answers, additional);
  }
  return true;
}

/** Candidates are (port × VIP); CoreDNS weighs by their count, then de-duplicates by (target, port). */
function addVirtualIpSrv(
  ctx: QueryContext,
  serviceImport: IndexedImport,
  filter: NameFilter,
  matchingPorts: number,
  answers: DnsRecord[],
  additional: DnsRecord[],
): void {
  const { ips } = serviceImport;
  const weight = srvWeight(matchingPorts * ips.length);
  const target = `${serviceImport.name}.${serviceImport.namespace}.svc.${ctx.zoneAsAsked}`;
  for (const port of serviceImport.ports) {
    if (!portMatches(port, filter) || port.port < 0) continue;
    if (!answers.some((r) => r.type === RRType.SRV && r.port === port.port)) {
      answers.push(srvRecord(ctx, weight, port.port, target));
    }
    for (const ip of ips) {
      if (!hasAddress(additional, ip.key)) additional.push(addressRecord(target, ctx.opts.ttl, ip));
    }
  }
}

/** Called for each candidate address of a headless/endpoint query. */
type AddressSink = (slice: IndexedSlice, address: IndexedAddress) => void;

function collectEndpoints(
  ctx: QueryContext,
  target: Extract<NameTarget, { kind: "service" }>,
  qtype: number,
  answers: DnsRecord[],
  additional: DnsRecord[],
): boolean {
  const { entry, filter } = target;
  const sink = addressSink(ctx, target, qtype, answers, additional);
  let candidates = 0;
  for (const slice of entry.slices.values()) {
    if (filter.endpoint && slice.clusterIdLower !== filter.clusterId) continue;
    const matchingPorts = countMatchingPorts(slice.ports, filter);
    if (matchingPorts === 0) continue;
    for (const address of slice.addresses) {
      if (filter.endpoint && address.hostnameLower !== filter.hostname) continue;
      candidates += matchingPorts;
      sink?.(slice, address);
    }
  }
  if (qtype === RRType.SRV) {
    const weight = srvWeight(candidates);
    for (const record of answers) if (record.type === RRType.SRV) record.weight = weight;
  }
  return candidates > 0;
}

/** What to emit per candidate address; undefined when only existence is asked (qtype 0). */
function addressSink(
  ctx: QueryContext,
  target: Extract<NameTarget, { kind: "service" }>,
  qtype: number,
  answers: DnsRecord[],
  additional: DnsRecord[],
): AddressSink | undefined {
  const seen = new Set<string>();
  if (qtype === RRType.A || qtype === RRType.AAAA) {
    const family = qtype === RRType.A ? 4 : 6;
    return (_slice, { ip }) => {
      if (ip.family !== family || seen.has(ip.key)) return;
      seen.add(ip.key);
      answers.push(addressRecord(ctx.owner, ctx.opts.ttl, ip));
    };
  }
  if (qtype !== RRType.SRV) return undefined;
  const { serviceImport, filter } = target;
  const suffix = `.${serviceImport.name}.${serviceImport.namespace}.svc.${ctx.zoneAsAsked}`;
  return (slice, address) => {
    const srvTarget = `${address.hostname}.${slice.clusterId}${suffix}`;
    // A target that cannot be encoded (over 255 octets) is left out rather than failing the answer.
    if (srvTarget.length > MAX_NAME_LENGTH) return;
    for (const port of slice.ports) {
      // Port -1 is the "no ports" sentinel: it counts as a candidate but yields no SRV (CoreDNS).
      if (!portMatches(port, filter) || port.port < 0) continue;
      const srvKey = `${srvTarget}|${port.port}`;
      if (!seen.has(srvKey)) {
        seen.add(srvKey);
        answers.push(srvRecord(ctx, 0, port.port, srvTarget));
      }
      const glueKey = `${srvTarget}|${address.ip.key}`;
      if (!seen.has(glueKey)) {
        seen.add(glueKey);
        additional.push(addressRecord(srvTarget, ctx.opts.ttl, address.ip));
      }
    }
  };
}

function countMatchingPorts(ports: readonly IndexedPort[], filter: NameFilter): number {
  let count = 0;
  for (const port of ports) if (portMatches(port, filter)) count++;
  return count;
}

function portMatches(port: IndexedPort, filter: NameFilter): boolean {
  return (
    (filter.port === "" || filter.port === port.nameLower) &&
    (filter.protocol === "" || filter.protocol === port.protocolLower)
  );
}

/**
 * CoreDNS's SRV weight with every record at priority 0 and default weight 100:
 * floor(100 / (100·n) · 100) in float64, at least 1. Written the same way so rounding matches.
 */
export function srvWeight(candidates: number): number {
  const weight = Math.floor((100 / (100 * candidates)) * 100);
  return weight < 1 ? 1 : weight;
}

function hasAddress(records: readonly DnsRecord[], key: string): boolean {
  for (const record of records) {
    if ((record.type === RRType.A || record.type === RRType.AAAA) && record.address === key) return true;
  }
  return false;
}

function addressRecord(name: string, ttl: number, ip: ParsedIp): AddressRecord {
  return { type: ip.family === 4 ? RRType.A : RRType.AAAA, name, ttl, address: ip.key, rdata: ip.bytes };
}

function srvRecord(ctx: QueryContext, weight: number, port: number, target: string): SrvRecord {
  return {
    type: RRType.SRV,
    name: ctx.owner,
    ttl: ctx.opts.ttl,
    priority: SRV_PRIORITY,
    weight,
    port,
    target,
  };
}

function addressRecords(name: string, ctx: QueryContext, qtype: number): DnsRecord[] {
  const family = qtype === RRType.A ? 4 : 6;
  const out: DnsRecord[] = [];
  for (const ip of ctx.opts.nameservers) {
    if (ip.family === family && !hasAddress(out, ip.key)) out.push(addressRecord(name, ctx.opts.ttl, ip));
  }
  return out;
}

function nameserverRecords(ctx: QueryContext): Outcome {
  const host = `ns.dns.${ctx.zoneAsAsked}`;
  const additional = [...addressRecords(host, ctx, RRType.A), ...addressRecords(host, ctx, RRType.AAAA)];
  return {
    kind: "records",
    answers: [{ type: RRType.NS, name: ctx.owner, ttl: ctx.opts.ttl, target: host }],
    additional,
  };
}

function soaRecord(ctx: QueryContext): SoaRecord {
  const zone = ctx.zoneAsAsked;
  return {
    type: RRType.SOA,
    name: zone,
    ttl: ctx.opts.soaTtl,
    mname: `ns.dns.${zone}`,
    rname: `hostmaster.${zone}`,
    serial: ctx.zone.serial >>> 0,
    refresh: SOA_REFRESH,
    retry: SOA_RETRY,
    expire: SOA_EXPIRE,
    minimum: ctx.opts.ttl,
  };
}

function records(answers: DnsRecord[]): Outcome {
  return answers.length > 0 ? { kind: "records", answers, additional: NONE } : NODATA_OUTCOME;
}

/** Adds the SOA to negative answers and turns NXDOMAIN into SERVFAIL until the zone is synced. */
function finish(ctx: QueryContext, outcome: Outcome): Resolution {
  switch (outcome.kind) {
    case "records":
      return {
        rcode: Rcode.NOERROR,
        aa: true,
        answers: outcome.answers,
        authority: NONE,
        additional: outcome.additional,
      };
    case "nodata":
      return { rcode: Rcode.NOERROR, aa: true, answers: NONE, authority: [soaRecord(ctx)], additional: NONE };
    case "nxdomain":
      return {
        rcode: ctx.zone.synced ? Rcode.NXDOMAIN : Rcode.SERVFAIL,
        aa: true,
        answers: NONE,
        authority: [soaRecord(ctx)],
        additional: NONE,
      };
  }
}

/**
 * Length of the part of `nameLower` in front of `.<zoneLower>`: 0 at the apex, -1 outside the zone.
 * A dot preceded by an odd number of backslashes is part of a label, not a separator.
 */
function relativeLength(nameLower: string, zoneLower: string): number {
  if (nameLower === zoneLower) return 0;
  const dot = nameLower.length - zoneLower.length - 1;
  if (dot < 1 || !nameLower.endsWith(zoneLower)) return -1;
  if (nameLower.charCodeAt(dot) !== DOT || isEscaped(nameLower, dot)) return -1;
  return dot;
}

function trimFinalDot(name: string): string {
  const last = name.length - 1;
  if (last >= 0 && name.charCodeAt(last) === DOT && !isEscaped(name, last)) return name.slice(0, last);
  return name;
}

function isEscaped(text: string, index: number): boolean {
  let backslashes = 0;
  for (let i = index - 1; i >= 0 && text.charCodeAt(i) === BACKSLASH; i--) backslashes++;
  return backslashes % 2 === 1;
}

function stripUnderscore(label: string): string {
  return label.startsWith("_") ? label.slice(1) : label;
}
