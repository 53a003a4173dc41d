/** `meridian dns`: runs one member's `clusterset.local` DNS server (see src/dns/daemon.ts). */
import type { Command } from "commander";
import { UserError } from "../local/state.js";

interface DnsCommandOptions {
  kubeconfig?: string;
  context?: string;
  apiSocket?: string;
  listen: string;
  metrics?: string;
  ttl: string;
  zone: string;
  logLevel: string;
  readyFile?: string;
}

const LOG_LEVELS = ["debug", "info", "warn", "error"];

/**
 * Registers `meridian dns`, and the hidden `meridian api-relay` the local clusterset uses to give
 * processes inside a member's network (DNS first) access to that member's API server.
 */
export function registerDnsCommand(program: Command): void {
  program
    .command("api-relay", { hidden: true })
    .description("relay connections from one address to another (local clusterset plumbing)")
    .requiredOption(
      "--from <endpoint...>",
      "unix:/PATH or tcp:HOST:PORT to accept connections on (repeatable)",
    )
    .requiredOption(
      "--to <endpoint...>",
      "unix:/PATH or tcp:HOST:PORT to connect each one to (one per --from)",
    )
    .action(async (opts: { from: string[]; to: string[] }) => {
      const { parseRelayEndpoint, startRelay } = await import("../local/apirelay.js");
      if (opts.from.length !== opts.to.length) throw new UserError("give one --to for every --from");
      const pairs = opts.from.map((f, i) => {
        try {
          return { from: parseRelayEndpoint("--from", f), to: parseRelayEndpoint("--to", opts.to[i]!) };
        } catch (error) {
          throw new UserError((error as Error).message);
        }
      });
      const log = (line: string): void => void process.stderr.write(`${new Date().toISOString()} ${line}\n`);
      const servers = await Promise.all(pairs.map((p) => startRelay(p.from, p.to, log)));
      await new Promise<void>((resolve) => {
        process.once("SIGTERM", resolve);
        process.once("SIGINT", resolve);
      });
      for (const server of servers) server.close();
    });

  program
    .command("dns")
    .description(
      "serve clusterset.local DNS from one member's ServiceImports, MCS EndpointSlices and Namespaces",
    )
    .option(
      "--kubeconfig <file>",
      "kubeconfig of the member's own API server (default: in-cluster credentials)",
    )
    .option("--context <name>", "kubeconfig context (default: its current context)")
    .option("--api-socket <path>", "reach the API server through this Unix socket (local clusterset)")
    .option("--listen <host:port>", "UDP and TCP address to answer on", "127.0.0.1:53")
    .option("--metrics <host:port>", "serve /metrics, /ready and /healthz over HTTP here")
    .option("--ttl <seconds>", "TTL of answers and the SOA minimum (0-3600)", "5")
    .option("--zone <domain>", "the zone served", "clusterset.local")
    .option("--log-level <level>", `log level: ${LOG_LEVELS.join(", ")}`, "info")
    .option(
      "--ready-file <path>",
      "create this file once the caches are synced (for supervisors outside the server's network)",
    )
    .action(async (opts: DnsCommandOptions) => {
      const { parseHostPort, startDnsDaemon } = await import("../dns/daemon.js");
      const { pino } = await import("pino");
      const parse = <T>(what: () => T): T => {
        try {
          return what();
        } catch (error) {
          throw new UserError((error as Error).message);
        }
      };
      const listen = parse(() => parseHostPort("--listen", opts.listen));
      const metrics =
        opts.metrics === undefined ? undefined : parse(() => parseHostPort("--metrics", opts.metrics!));
      const ttl = Number(opts.ttl);
      if (!/^\d+$/.test(opts.ttl) || ttl > 3600) {
        throw new UserError(`--ttl must be a whole number of seconds from 0 to 3600, got "${opts.ttl}"`);
      }
      const zone = opts.zone.replace(/\.$/, "");
      if (!/^([a-z0-9]([a-z0-9-]*[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]*[a-z0-9])?$/i.test(zone)) {
        throw new UserError(`--zone must be a domain name such as clusterset.local, got "${opts.zone}"`);
      }
      if (!LOG_LEVELS.includes(opts.logLevel)) {
        throw new UserError(`--log-level must be one of ${LOG_LEVELS.join(", ")}, got "${opts.logLevel}"`);
      }
      const logger = pino({ name: "meridian-dns", level: opts.logLevel });
      const daemon = await parse(() =>
        startDnsDaemon({
          kubeconfig: opts.kubeconfig,
          context: opts.context,
          apiSocket: opts.apiSocket,
          listen,
          metrics,
          ttl,
          zone,
          logger,
        }),
      ).catch((error: unknown) => {
        throw error instanceof UserError ? error : new UserError((error as Error).message);
      });
      const { writeFileSync, rmSync } = await import("node:fs");
      const readyFile = opts.readyFile;
      if (readyFile) {
        rmSync(readyFile, { force: true });
        void daemon.synced.then(() => writeFileSync(readyFile, `${process.pid}\n`));
      }
      await new Promise<void>((resolve) => {
        process.once("SIGTERM", resolve);
        process.once("SIGINT", resolve);
      });
      logger.info("stopping");
      if (readyFile) rmSync(readyFile, { force: true });
      await daemon.close();
    });
}
