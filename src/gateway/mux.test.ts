import assert from "node:assert/strict";
import type net from "node:net";
import { describe, it } from "node:test";
import type { TLSSocket } from "node:tls";
import { recordWrites, tcpPair } from "./fixtures.js";
import { FIRST_ANSWER_WAIT_MS, MIN_IN_FLIGHT } from "./mux-window.js";
import type { MuxChannel } from "./mux.js";
import {
  INITIAL_CHANNEL_WINDOW,
  MUX_HEADER,
  MUX_SLICE,
  MUX_TAIL,
  MUX_WRITE_QUEUE,
  leastLoaded,
  MuxConnection,
  MuxFrame,
  MuxFrameReader,
  muxHeader,
} from "./mux.js";

describe("mux frames", () => {
  const collect = (chunks: Buffer[]): { type: number; stream: number; payload: string }[] => {
    const frames: { type: number; stream: number; payload: string }[] = [];
    const reader = new MuxFrameReader((type, stream, payload) =>
      frames.push({ type, stream, payload: payload.toString() }),
    );
    for (const c of chunks) reader.push(c);
    return frames;
  };
  const wire = Buffer.concat([
    muxHeader(MuxFrame.open, 1, 4),
    Buffer.from("echo"),
    muxHeader(MuxFrame.data, 1, 11),
    Buffer.from("hello world"),
    muxHeader(MuxFrame.fin, 1, 0),
  ]);

  it("reads frames whole when they arrive in one piece", () => {
    assert.deepEqual(collect([wire]), [
      { type: MuxFrame.open, stream: 1, payload: "echo" },
      { type: MuxFrame.data, stream: 1, payload: "hello world" },
      { type: MuxFrame.fin, stream: 1, payload: "" },
    ]);
  });

  it("reassembles control frames cut anywhere and passes DATA on as it arrives", () => {
    for (let cut = 1; cut < wire.length; cut++) {
      const frames = collect([wire.subarray(0, cut), wire.subarray(cut)]);
      const data = frames.filter((f) => f.type === MuxFrame.data);
      assert.equal(data.map((f) => f.payload).join(""), "hello world", `cut at ${cut}`);
      assert.deepEqual(
        frames.filter((f) => f.type !== MuxFrame.data),
        [
          { type: MuxFrame.open, stream: 1, payload: "echo" },
          { type: MuxFrame.fin, stream: 1, payload: "" },
        ],
        `cut at ${cut}`,
      );
    }
  });

  it("survives a byte at a time", () => {
    const bytes = [...wire].map((b) => Buffer.from([b]));
    const frames = collect(bytes);
    assert.equal(frames.filter((f) => f.type === MuxFrame.open).length, 1);
    assert.equal(
      frames
        .filter((f) => f.type === MuxFrame.data)
        .map((f) => f.payload)
        .join(""),
      "hello world",
    );
  });
});

/** Two ends of one multiplexed connection over a loopback TCP pair (TLS adds nothing here). */
async function connectedPair(): Promise<{
  dialer: MuxConnection;
  accepted: Promise<MuxChannel>;
  /** The accepting side's end of the connection. */
  raw: net.Socket;
  close: () => void;
}> {
  let onChannel!: (c: MuxChannel) => void;
  const accepted = new Promise<MuxChannel>((resolve) => (onChannel = resolve));
  const { client, wire: raw, close } = await tcpPair();
  // The connection uses only a TLSSocket's Duplex and socket members.
  new MuxConnection(raw as TLSSocket, (channel) => onChannel(channel));
  const dialer = new MuxConnection(client as TLSSocket);
  return { dialer, accepted, raw, close };
}

/** A dialing connection over a loopback pair, and every channel frame its peer's end reads ("type:channel:payload"). */
async function dialerWithFrameLog(): Promise<{
  client: net.Socket;
  dialer: MuxConnection;
  frames: string[];
  close: () => void;
}> {
  const { client, wire, close } = await tcpPair();
  const frames: string[] = [];
  // Channel 0 is the connection's own (probes of what is in flight), not the channels'.
  const reader = new MuxFrameReader((type, channel, payload) => {
    if (channel !== 0) frames.push(`${type}:${channel}:${payload.toString()}`);
  });
  wire.on("data", (chunk: Buffer) => reader.push(chunk));
  return { client, dialer: new MuxConnection(client as TLSSocket), frames, close };
}

const drained = (channel: MuxChannel): Promise<Buffer> =>
  new Promise((resolve) => {
    const chunks: Buffer[] = [];
    channel.on("data", (c: Buffer) => chunks.push(c));
    channel.once("end", () => resolve(Buffer.concat(chunks)));
  });

describe("mux channels", () => {
  it("carries bytes both ways and passes each side's end on (half-close)", async () => {
    const { dialer, accepted, close } = await connectedPair();
    const out = dialer.open();
    out.end("request");
    const inbound = await accepted;
    assert.equal((await drained(inbound)).toString(), "request");
    inbound.end("answer after the request's end");
    assert.equal((await drained(out)).toString(), "answer after the request's end");
    close();
  });

  it("holds a sender to the window while the reader takes nothing, then delivers every byte", async () => {
    const { dialer, accepted, close } = await connectedPair();
    const out = dialer.open();
    const payload = Buffer.alloc(16 * 2 ** 20);
    for (let i = 0; i < payload.length; i += 4096) payload[i] = (i / 4096) % 256;
    out.end(payload);
    const inbound = await accepted;
    inbound.pause();
    await new Promise((r) => setTimeout(r, 300));
    // The reader took nothing: what reached it is the first window, however large the write.
    assert.ok(
      inbound.readableLength <= INITIAL_CHANNEL_WINDOW,
      `${inbound.readableLength} bytes buffered at a reader that took none`,
    );
    assert.ok(out.writableLength > 0, "the sender was not held back");
    const received = drained(inbound);
    inbound.resume();
    assert.ok((await received).equals(payload));
    close();
  });

  it("tells the peer of a deferred channel with its first frame, and not at all if nothing was sent", async () => {
    const { dialer, frames, close } = await dialerWithFrameLog();
    const settle = () => new Promise((r) => setTimeout(r, 50));
    const deferred = { deferOpen: true };
    const [first, unused, ended] = [
      dialer.open(Buffer.from("a"), deferred),
      dialer.open(undefined, deferred),
      dialer.open(undefined, deferred),
    ];
    dialer.open(Buffer.from("b")); // not deferred: a server-speaks-first stream must reach its peer
    await settle();
    assert.deepEqual(frames, [`${MuxFrame.open}:7:b`], "a deferred channel alone sends nothing");
    first.write("x");
    unused.destroy();
    ended.end();
    await settle();
    assert.deepEqual(frames, [
      `${MuxFrame.open}:7:b`,
      `${MuxFrame.open}:1:a`,
      `${MuxFrame.data}:1:x`,
      `${MuxFrame.open}:5:`,
      `${MuxFrame.fin}:5:`,
    ]);
    close();
  });

  it("sends a turn's first frame at once, and the frames after it together when the turn ends", async () => {
    const { client, dialer, frames, close } = await dialerWithFrameLog();
    try {
      const [a, b] = [dialer.open(Buffer.from("a")), dialer.open(Buffer.from("b"))];
      await new Promise((r) => setImmediate(r)); // a new turn
      a.write("x");
      // A round trip's frame is alone in its turn: it is in the kernel's hands before the turn ends.
      assert.equal(client.writableLength, 0, "the turn's first frame waited");
      b.write("y");
      a.write("z");
      assert.equal(client.writableCorked, 1, "later frames of the turn went out one by one");
      assert.ok(client.writableLength > 0);
      await new Promise((r) => setImmediate(r));
      assert.equal(client.writableCorked, 0, "the turn ended with frames still held");
      await new Promise((r) => setTimeout(r, 50));
      assert.deepEqual(frames, [
        `${MuxFrame.open}:1:a`,
        `${MuxFrame.open}:3:b`,
        `${MuxFrame.data}:1:x`,
        `${MuxFrame.data}:3:y`,
        `${MuxFrame.data}:1:z`,
      ]);
    } finally {
      close(); // also when an assertion failed: open sockets would hold the test run
    }
  });

  it("sends a write's slices in one socket write, its short tail riding with the last slice", async () => {
    const { client, wire, close } = await tcpPair();
    const received: Buffer[] = [];
    wire.on("data", (chunk: Buffer) => received.push(chunk));
    const dialer = new MuxConnection(client as TLSSocket);
    try {
      const channel = dialer.open();
      await new Promise((r) => setTimeout(r, 20)); // the OPEN has gone; a new turn
      const writes = recordWrites(client);
      // A bulk read: more than one slice, and a few bytes over (a stream frame's header).
      const tail = MUX_TAIL - 1;
      channel.write(Buffer.alloc(MUX_SLICE + MUX_SLICE + tail, 1));
      await new Promise((r) => setTimeout(r, 50));
      const data: number[] = [];
      let probes = 0;
      const bytes = Buffer.concat(received);
      for (let at = 0; at < bytes.length; at += MUX_HEADER + bytes.readUInt32BE(at + 5))
        if (bytes[at] === MuxFrame.data) data.push(bytes.readUInt32BE(at + 5));
        else if (bytes[at] === MuxFrame.probe) probes++;
      assert.deepEqual(data, [MUX_SLICE, MUX_SLICE + tail], "the tail went as a frame of its own");
      // Records are cut from what one write holds: separate writes each end in a short record.
      // The connection's probes (channel 0; the first went when it started) ride in it too.
      assert.ok(probes >= 2, `${probes} probes`);
      assert.deepEqual(
        writes,
        [2 * MUX_SLICE + tail + 2 * MUX_HEADER + (probes - 1) * (MUX_HEADER + 4)],
        "the slices left in separate writes",
      );
    } finally {
      close();
    }
  });

  it("forgets a channel both sides released, and cuts the peer's on an error", async () => {
    const { dialer, accepted, close } = await connectedPair();
    const first = dialer.open();
    first.write("x");
    const firstIn = await accepted;
    const bothClosed = Promise.all([
      new Promise((r) => firstIn.once("close", r)),
      new Promise((r) => first.once("close", r)),
    ]);
    first.release();
    firstIn.release();
    await bothClosed;
    assert.equal(dialer.load, 0);

    const { dialer: d2, accepted: a2, close: close2 } = await connectedPair();
    const cut = d2.open();
    cut.write("y");
    const cutIn = await a2;
    let ended = false;
    cutIn.on("end", () => (ended = true));
    const cutClosed = new Promise((r) => cutIn.once("close", r));
    cut.destroy();
    await cutClosed;
    assert.equal(ended, false, "a cut channel must not look like a clean end");
    close();
    close2();
  });

  it("bounds what waits in the socket to a queue, however much credit the channels hold", async () => {
    const { dialer, raw, close } = await connectedPair();
    raw.pause(); // a link that takes nothing more, once the kernel's buffers are full
    const channels = Array.from({ length: 64 }, () => dialer.open());
    const accepted = channels.map((c) => c.write(Buffer.alloc(INITIAL_CHANNEL_WINDOW)));
    await new Promise((r) => setTimeout(r, 300));
    // 16 MiB is within the channels' credit; all but what the kernel took would sit in the socket.
    assert.ok(
      dialer.socket.writableLength <= MUX_WRITE_QUEUE + MUX_SLICE + 4096,
      `${dialer.socket.writableLength} bytes queued in the socket`,
    );
    assert.ok(
      accepted.every((ok) => !ok),
      "a channel whose bytes cannot go out must push back on its writer",
    );
    close();
  });

  it("sends a short write in turn with a long one, not behind all of it", async () => {
    const { client, wire, close } = await tcpPair();
    const dialer = new MuxConnection(client as TLSSocket);
    const bulk = dialer.open();
    const rpc = dialer.open();
    bulk.write(Buffer.alloc(4 * 2 ** 20));
    rpc.write("ping");
    // The order DATA leaves in, read off the wire.
    let bulkBytes = 0;
    const bulkBytesBeforePing = await new Promise<number>((resolve) => {
      const reader = new MuxFrameReader((type, channel, payload) => {
        if (type !== MuxFrame.data) return;
        if (channel === bulk.id) bulkBytes += payload.length;
        else if (channel === rpc.id) resolve(bulkBytes);
      });
      wire.on("data", (c: Buffer) => reader.push(c));
    });
    // Behind the socket's queue and a slice of the long write's, not its whole window (256 KiB).
    assert.ok(
      bulkBytesBeforePing <= MUX_WRITE_QUEUE + 2 * MUX_SLICE,
      `${bulkBytesBeforePing} bytes of the long write went first`,
    );
    close();
  });

  it("keeps what its peer has not read within the window the peer's answers measure", async () => {
    const { dialer, raw, close } = await connectedPair();
    try {
      // The connection's first probe, answered, is all it has measured: its least window.
      for (let i = 0; i < 100 && !Number.isFinite(dialer.inFlightLimit); i++)
        await new Promise((r) => setTimeout(r, 10));
      const limit = dialer.inFlightLimit;
      assert.equal(limit, MIN_IN_FLIGHT, "a peer that answers probes holds the connection to a window");
      const client = dialer.socket;
      const inKernelBefore = client.bytesWritten - client.writableLength;
      raw.pause();
      const uploads = Array.from({ length: 16 }, () => dialer.open());
      for (const u of uploads) u.write(Buffer.alloc(INITIAL_CHANNEL_WINDOW));
      await new Promise((r) => setTimeout(r, 300));
      const gone = client.bytesWritten - client.writableLength - inKernelBefore;
      assert.ok(gone <= limit + MUX_SLICE + 4096, `${gone} bytes left for a peer that read none of them`);
      assert.ok(dialer.backedUp, "channels wait for the peer's answer");
      raw.resume();
      await new Promise((r) => setTimeout(r, 300));
      const goneAfter = client.bytesWritten - client.writableLength - inKernelBefore;
      assert.ok(goneAfter >= 16 * INITIAL_CHANNEL_WINDOW, `${goneAfter} bytes sent once the peer read again`);
      assert.equal(dialer.backedUp, false);
    } finally {
      close();
    }
  });

  it("never holds back a peer that does not answer probes (a gateway from before them)", async () => {
    const { client, wire, close } = await tcpPair();
    try {
      let probes = 0;
      let data = 0;
      const reader = new MuxFrameReader((type, channel, payload) => {
        if (channel === 0 && type === MuxFrame.probe) probes++;
        if (type === MuxFrame.data) data += payload.length;
      });
      wire.on("data", (chunk: Buffer) => reader.push(chunk));
      const dialer = new MuxConnection(client as TLSSocket);
      for (const u of Array.from({ length: 16 }, () => dialer.open()))
        u.write(Buffer.alloc(INITIAL_CHANNEL_WINDOW));
      await new Promise((r) => setTimeout(r, 300));
      // Until its first probe is answered, or the wait for it is over, a connection keeps to its least window.
      assert.ok(data <= MIN_IN_FLIGHT + MUX_SLICE, `${data} bytes before the peer could answer`);
      await new Promise((r) => setTimeout(r, FIRST_ANSWER_WAIT_MS));
      assert.equal(data, 16 * INITIAL_CHANNEL_WINDOW, "every byte the channels had credit for");
      assert.equal(dialer.inFlightLimit, Infinity);
      const probesThen = probes;
      for (const u of Array.from({ length: 4 }, () => dialer.open()))
        u.write(Buffer.alloc(INITIAL_CHANNEL_WINDOW));
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(probes, probesThen, "a silent peer is probed no more");
    } finally {
      close();
    }
  });

  it("places a new channel on the connection with the fewest channels, unless it is backed up", async () => {
    const slow = await connectedPair();
    const fast = await connectedPair();
    for (let i = 0; i < 100; i++) fast.dialer.open(); // more channels than the slow one will have
    const upload = slow.dialer.open();
    assert.equal(
      leastLoaded([slow.dialer, fast.dialer]),
      slow.dialer,
      "fewest channels while neither is backed up",
    );
    slow.raw.pause();
    const uploads = [upload, ...Array.from({ length: 63 }, () => slow.dialer.open())];
    for (const u of uploads) u.write(Buffer.alloc(INITIAL_CHANNEL_WINDOW));
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(slow.dialer.backedUp, "16 MiB toward a reader that takes nothing backs the connection up");
    assert.equal(leastLoaded([slow.dialer, fast.dialer]), fast.dialer);
    slow.close();
    fast.close();
  });
});
