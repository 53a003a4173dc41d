/**
 * A stand-in for a WAN link between two gateways, for bench/gateway-hol.ts: a TCP relay that
 * carries each direction at a set rate and serves the connections through it in turn (16 KiB
 * each), as a link whose router queues per flow (Linux's fq_codel) would. It holds at most 64 KiB
 * per connection and direction before it stops reading from that connection, so what waits beyond
 * that waits in the senders' sockets, as it would behind a real bottleneck.
 */
import net from "node:net";

const QUANTUM = 16 * 1024;
const FLOW_QUEUE = 64 * 1024;

/** One direction of one connection through the link. */
interface Flow {
  from: net.Socket;
  to: net.Socket;
  chunks: Buffer[];
  bytes: number;
  ended: boolean;
}

/** One direction of the link: sends the flows' bytes in turn at the link's rate. */
export class LinkDirection {
  private readonly active = new Set<Flow>();
  private budget = 0;
  private last = performance.now();
  private readonly timer = setInterval(() => this.tick(), 1);

  constructor(private readonly bytesPerMs: number) {}

  /** Bytes the link has carried this way. */
  carried = 0;

  enqueue(flow: Flow, chunk: Buffer): void {
    flow.chunks.push(chunk);
    flow.bytes += chunk.length;
    if (flow.bytes > FLOW_QUEUE) flow.from.pause();
    this.active.add(flow);
    if (this.budget > 0) this.tick();
  }

  end(flow: Flow): void {
    flow.ended = true;
    if (flow.bytes === 0) flow.to.end();
  }

  close(): void {
    clearInterval(this.timer);
  }

  private tick(): void {
    const now = performance.now();
    // A link idle for a while does not save up: at most a millisecond's worth of burst.
    this.budget = Math.min(this.budget + (now - this.last) * this.bytesPerMs, this.bytesPerMs);
    this.last = now;
    while (this.budget > 0 && this.active.size > 0) {
      const [flow] = this.active as Iterable<Flow>;
      this.active.delete(flow!);
      const out: Buffer[] = [];
      let room = QUANTUM;
      while (room > 0 && flow!.chunks.length > 0) {
        const chunk = flow!.chunks[0]!;
        if (chunk.length <= room) {
          out.push(chunk);
          flow!.chunks.shift();
          room -= chunk.length;
        } else {
          out.push(chunk.subarray(0, room));
          flow!.chunks[0] = chunk.subarray(room);
          room = 0;
        }
      }
      const sent = QUANTUM - room;
      flow!.bytes -= sent;
      this.budget -= sent;
      this.carried += sent;
      flow!.to.write(Buffer.concat(out));
      if (flow!.bytes > 0) this.active.add(flow!);
      else if (flow!.ended) flow!.to.end();
      if (flow!.bytes <= FLOW_QUEUE) flow!.from.resume();
    }
  }
}

export interface Link {
  port: number;
  /** Client to target. */
  outbound: LinkDirection;
  close: () => void;
}

/** A link of `mbitPerSecond` each way from a port on 127.0.0.1 to `targetPort`. */
export async function startLink(targetPort: number, mbitPerSecond: number): Promise<Link> {
  const bytesPerMs = (mbitPerSecond * 1e6) / 8 / 1000;
  const outbound = new LinkDirection(bytesPerMs);
  const inbound = new LinkDirection(bytesPerMs);
  const carry = (from: net.Socket, to: net.Socket, direction: LinkDirection): void => {
    const flow: Flow = { from, to, chunks: [], bytes: 0, ended: false };
    from.on("data", (chunk: Buffer) => direction.enqueue(flow, chunk));
    from.on("end", () => direction.end(flow));
    from.on("error", () => to.destroy());
    // An abort (closed without an end) is passed on at once; an end, once the bytes before it are.
    from.on("close", () => {
      if (!flow.ended) to.destroy();
    });
  };
  const server = net.createServer({ allowHalfOpen: true }, (client) => {
    const upstream = net.connect({ port: targetPort, host: "127.0.0.1", allowHalfOpen: true, noDelay: true });
    client.setNoDelay(true);
    carry(client, upstream, outbound);
    carry(upstream, client, inbound);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    port: (server.address() as net.AddressInfo).port,
    outbound,
    close: () => {
      outbound.close();
      inbound.close();
      server.close();
    },
  };
}
