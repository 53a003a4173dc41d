/**
 * Gateway mode's two facts about an importing member: where its gateway is (the ready endpoints of
 * `meridian-system/meridian-gateway`), and which port the gateway holds for each imported service
 * port. Ports are allocated here, by the one controller that writes imports, so they never clash.
 */
import { GATEWAY_SERVICE, MEMBER_NAMESPACE } from "../api/meridian.js";
import type { ImportingGateway } from "./endpoints.js";
import type { Member } from "./member.js";

export const LISTEN_PORT_RANGE = { first: 20000, last: 29999 } as const;

export function gatewayAddresses(member: Pick<Member, "sourceSlicesOf">): ImportingGateway["addresses"] {
  const out: Array<{ address: string; addressType: "IPv4" | "IPv6" }> = [];
  for (const slice of member.sourceSlicesOf(`${MEMBER_NAMESPACE}/${GATEWAY_SERVICE}`)) {
    if (slice.addressType !== "IPv4" && slice.addressType !== "IPv6") continue;
    for (const endpoint of slice.endpoints ?? []) {
      if (endpoint.conditions?.ready === false) continue;
      const address = endpoint.addresses[0];
      if (address && !out.some((a) => a.address === address))
        out.push({ address, addressType: slice.addressType });
    }
  }
  return out.sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0));
}

/** Listen ports of one member's gateway, per service key and port reference. */
export class ListenPortAllocator {
  private readonly byKey = new Map<string, Map<string, number>>();
  private readonly used = new Set<number>();

  /** Records allocations found on existing imports; a port already taken is left to be reallocated. */
  seed(key: string, ports: ReadonlyMap<string, number>): void {
    const mine = this.byKey.get(key) ?? new Map<string, number>();
    for (const [ref, port] of ports) {
      if (this.used.has(port) || port < LISTEN_PORT_RANGE.first || port > LISTEN_PORT_RANGE.last) continue;
      mine.set(ref, port);
      this.used.add(port);
    }
    if (mine.size > 0) this.byKey.set(key, mine);
  }

  /** Ports for exactly `refs` of `key`: kept where already allocated, the lowest free otherwise. */
  allocate(key: string, refs: readonly string[]): Map<string, number> {
    const mine = this.byKey.get(key) ?? new Map<string, number>();
    for (const [ref, port] of mine) {
      if (refs.includes(ref)) continue;
      mine.delete(ref);
      this.used.delete(port);
    }
    for (const ref of refs) {
      if (mine.has(ref)) continue;
      const port = this.lowestFree();
      if (port === undefined) break;
      mine.set(ref, port);
      this.used.add(port);
    }
    this.byKey.set(key, mine);
    return new Map(mine);
  }

  release(key: string): void {
    for (const port of this.byKey.get(key)?.values() ?? []) this.used.delete(port);
    this.byKey.delete(key);
  }

  private lowestFree(): number | undefined {
    for (let port = LISTEN_PORT_RANGE.first; port <= LISTEN_PORT_RANGE.last; port++)
      if (!this.used.has(port)) return port;
    return undefined;
  }
}
