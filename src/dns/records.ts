/**
 * The record and response shapes shared by the resolver (`resolve.ts`) and the wire codec
 * (`codec.ts`). Names are presentation text without the trailing dot; addresses are already in wire
 * form so encoding is a copy.
 */

/** Resource record types the zone serves or reasons about (IANA numbers). */
export const RRType = {
  A: 1,
  NS: 2,
  CNAME: 5,
  SOA: 6,
  PTR: 12,
  MX: 15,
  TXT: 16,
  AAAA: 28,
  SRV: 33,
  OPT: 41,
  IXFR: 251,
  AXFR: 252,
  ANY: 255,
} as const;

/** Response codes (RFC 1035, RFC 6891 for BADVERS, which needs the extended-rcode bits of OPT). */
export const Rcode = {
  NOERROR: 0,
  FORMERR: 1,
  SERVFAIL: 2,
  NXDOMAIN: 3,
  NOTIMP: 4,
  REFUSED: 5,
  BADVERS: 16,
} as const;

/** The only class served. */
export const CLASS_IN = 1;

/** An A or AAAA record. */
export interface AddressRecord {
  readonly type: typeof RRType.A | typeof RRType.AAAA;
  readonly name: string;
  readonly ttl: number;
  /** Canonical text of the address, for logs and tests. */
  readonly address: string;
  /** 4 (A) or 16 (AAAA) bytes. */
  readonly rdata: Uint8Array;
}

/** An SRV record. `weight` is mutable because CoreDNS's weight depends on the final candidate count. */
export interface SrvRecord {
  readonly type: typeof RRType.SRV;
  readonly name: string;
  readonly ttl: number;
  readonly priority: number;
  weight: number;
  readonly port: number;
  readonly target: string;
}

/** A TXT record with a single character-string. */
export interface TxtRecord {
  readonly type: typeof RRType.TXT;
  readonly name: string;
  readonly ttl: number;
  readonly text: string;
}

/** An SOA record. */
export interface SoaRecord {
  readonly type: typeof RRType.SOA;
  readonly name: string;
  readonly ttl: number;
  readonly mname: string;
  readonly rname: string;
  readonly serial: number;
  readonly refresh: number;
  readonly retry: number;
  readonly expire: number;
  readonly minimum: number;
}

/** An NS record. */
export interface NsRecord {
  readonly type: typeof RRType.NS;
  readonly name: string;
  readonly ttl: number;
  readonly target: string;
}

/** Any record the zone can emit. */
export type DnsRecord = AddressRecord | SrvRecord | TxtRecord | SoaRecord | NsRecord;

/** A question: presentation name (case as asked, trailing dot optional) and numeric type. */
export interface Question {
  readonly name: string;
  readonly type: number;
}

/** What the resolver decided; the wire layer adds header flags, EDNS and truncation. */
export interface Resolution {
  readonly rcode: number;
  /** Authoritative Answer bit: set for every in-zone answer, as CoreDNS does. */
  readonly aa: boolean;
  readonly answers: readonly DnsRecord[];
  readonly authority: readonly DnsRecord[];
  readonly additional: readonly DnsRecord[];
}
