/**
 * How many bytes a multiplexed connection lets travel toward its peer gateway before the peer has
 * read them. Without a bound the kernel's send buffer holds them (several MiB under Linux's
 * autotuning), and a small frame written behind a bulk upload waits until all of it has crossed
 * the link: on a 100 Mbit/s link, ~0.7 s. Bytes the connection keeps itself are taken channel by
 * channel in turn, so a small frame waits for at most one slice of each busy channel.
 *
 * The bound is measured, not configured, in the manner of BBR: the sender puts a probe into the
 * byte stream every half window, and the peer answers each as it reads it. Each answer gives a
 * round-trip time and a delivery rate, and the window is twice the path's bandwidth-delay product
 * (the smallest round trip of the last 10 s times the highest rate of the last second), so the
 * path stays full while the queue it builds is about one round trip deep. The window never falls
 * below `IN_FLIGHT_FLOOR_MS` of data at the delivery rate: on short, fast paths (a LAN's 0.2 ms at
 * 400 MB/s makes 80 KB) a window of only twice the product would need thousands of probes and
 * answers a second, each a TLS record, while a few milliseconds of queue cost a request little.
 *
 * Until the peer answers its first probe a connection keeps to the least window, so that neither
 * side's opening burst sits in front of the other's first answer and passes for the path's round
 * trip. A peer found silent (a gateway from before probes drops frames for channel 0, so it never
 * answers) is held to no window and probed no more.
 */

/** The window never falls below this much data at the delivery rate. */
export const IN_FLIGHT_FLOOR_MS = 4;
/** Nor below this many bytes (a connection with no measured rate yet, or an idle one). */
export const MIN_IN_FLIGHT = 64 * 1024;
/** How long a connection waits for the answer to its first probe before taking the peer to be silent. */
export const FIRST_ANSWER_WAIT_MS = 1_000;
/** A probe sent with no more than this in flight measures the path's own round trip. */
const CLEAN_IN_FLIGHT = MIN_IN_FLIGHT + 64 * 1024;
const WINDOW_GAIN = 2;
const MIN_RTT_HORIZON_MS = 10_000;
const MAX_RATE_HORIZON_MS = 1_000;

interface Probe {
  /** The probe's number on the wire (a uint32). */
  readonly tag: number;
  /** Bytes sent up to and including the probe. */
  readonly offset: number;
  readonly sentAt: number;
  /** What the peer had confirmed when the probe left, and when that was confirmed. */
  readonly deliveredAtSend: number;
  readonly deliveredAtSendTime: number;
  /** Sent with next to nothing ahead of it: its round trip is the path's, with no queue in it. */
  readonly clean: boolean;
}

export class DeliveryWindow {
  /** Bytes the peer has confirmed reading. */
  private delivered = 0;
  private deliveredTime: number;
  /** Bytes allowed in flight: the least until the peer answers, unbounded if it never does. */
  private bound = MIN_IN_FLIGHT;
  private readonly probes: Probe[] = [];
  private nextTag = 0;
  private lastProbeOffset = 0;
  private answered = false;
  private minRtt = Infinity;
  private minRttTime = 0;
  /**
   * The smallest round trip is stale: the window is at its least until a probe sent with the
   * queue drained comes back. A connection that is never idle never sees its path's round trip
   * otherwise, since every probe waits behind the queue the window allows.
   */
  private drainingForRtt = false;
  /** Delivery-rate samples (bytes per ms) in decreasing order of rate: the first is the highest. */
  private readonly rates: { rate: number; time: number }[] = [];

  constructor(now: number) {
    this.deliveredTime = now;
  }

  /** Bytes allowed in flight. */
  get limit(): number {
    return this.bound;
  }

  /** The sender has `sent` bytes in all and may send no more until the peer answers. */
  full(sent: number): boolean {
    return sent - this.delivered >= this.bound;
  }

  /** Whether a probe should follow the bytes sent so far. */
  probeDue(sent: number): boolean {
    // An unbounded window is a silent peer's: nothing to measure.
    if (this.bound === Infinity || sent <= this.lastProbeOffset) return false;
    // A full window needs a probe at its end, or no answer would ever open it again.
    return this.full(sent) || sent - this.lastProbeOffset >= this.bound / 2;
  }

  /** No answer came in time for the first probe: the peer does not answer, and is not held back. */
  peerSilent(): void {
    if (!this.answered) this.bound = Infinity;
  }

  /** A probe is about to go out, `offset` bytes into the stream (itself included): its tag. */
  probe(offset: number, now: number): number {
    const tag = this.nextTag;
    this.nextTag = (this.nextTag + 1) >>> 0;
    this.probes.push({
      tag,
      offset,
      sentAt: now,
      deliveredAtSend: this.delivered,
      deliveredAtSendTime: this.deliveredTime,
      clean: offset - this.delivered <= CLEAN_IN_FLIGHT,
    });
    this.lastProbeOffset = offset;
    return tag;
  }

  /** The peer answered probe `tag`: it has read everything up to it. False for an unknown tag. */
  answer(tag: number, now: number): boolean {
    const at = this.probes.findIndex((p) => p.tag === tag);
    if (at < 0) return false;
    const probe = this.probes[at]!;
    this.probes.splice(0, at + 1);
    this.answered = true;
    this.delivered = Math.max(this.delivered, probe.offset);
    this.deliveredTime = now;
    const rtt = now - probe.sentAt;
    if (rtt <= this.minRtt || (this.drainingForRtt && probe.clean)) {
      this.minRtt = rtt;
      this.minRttTime = now;
      this.drainingForRtt = false;
    } else if (now - this.minRttTime > MIN_RTT_HORIZON_MS) this.drainingForRtt = true;
    const interval = now - probe.deliveredAtSendTime;
    if (interval > 0) this.sampleRate((probe.offset - probe.deliveredAtSend) / interval, now);
    const maxRate = this.rates[0]?.rate ?? 0;
    this.bound = this.drainingForRtt
      ? MIN_IN_FLIGHT
      : Math.max(MIN_IN_FLIGHT, WINDOW_GAIN * maxRate * this.minRtt, maxRate * IN_FLIGHT_FLOOR_MS);
    return true;
  }

  private sampleRate(rate: number, now: number): void {
    while (this.rates.length > 0 && this.rates[this.rates.length - 1]!.rate <= rate) this.rates.pop();
    this.rates.push({ rate, time: now });
    while (this.rates.length > 1 && now - this.rates[0]!.time > MAX_RATE_HORIZON_MS) this.rates.shift();
  }
}
