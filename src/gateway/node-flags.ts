/**
 * V8 flags every gateway process runs with (they must be on Node's command line: V8 refuses to
 * change its garbage collector's threading once started, and NODE_OPTIONS does not take them).
 *
 * Why: a gateway allocates a fresh buffer for every socket read (64 KiB plain, 16 KiB decrypted
 * TLS), so bulk traffic drives V8 into a full mark-compact every few tens of megabytes. With the
 * default background marking and sweeping threads, that work competed with the gateway's own
 * thread for the cores, and after a burst of new connections it grew to a fifth of the process's
 * CPU (profiled: ConcurrentMarking::RunMajor). On the 2-core bench, marking on the main thread and
 * a larger initial old-generation budget (fewer mark-compacts between bulk reads) raised one
 * stream's throughput by about half and cut round-trip p99 by about half; idle memory per
 * connection did not change (bench/gateway.ts, docs/gateway-performance.md).
 *
 * An 8 MiB young generation from the start: V8 starts it at 1 MiB and grows it only while many
 * objects survive, which a relay's short-lived buffers and frames never do. At 1 MiB a steady
 * stream of small round trips met a 0.3-0.5 ms scavenge about every 120 ms in each gateway, often
 * enough to set the round-trip p99; at 8 MiB they come about every second. It costs at most 16 MiB
 * more resident memory per gateway, not per connection.
 */
export const GATEWAY_NODE_FLAGS: readonly string[] = [
  "--single-threaded-gc",
  "--initial-old-space-size=64",
  "--min-semi-space-size=8",
];
