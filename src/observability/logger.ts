/**
 * Structured JSON logs (pino) to stdout. Anything under a credential-looking key is redacted, so
 * a kubeconfig, token or key that ends up in a log line by mistake is not leaked.
 */
import { pino, type Logger } from "pino";

export type { Logger };

const REDACT = [
  "token",
  "*.token",
  "kubeconfig",
  "*.kubeconfig",
  "password",
  "*.password",
  "privateKey",
  "*.privateKey",
  "*.client-key-data",
  "*.clientKeyData",
];

export function createLogger(component: string, level = process.env["MERIDIAN_LOG_LEVEL"] ?? "info"): Logger {
  return pino({ level, base: { component }, redact: { paths: REDACT, censor: "[redacted]" } });
}
