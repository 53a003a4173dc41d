/**
 * metav1.Condition helpers that keep `lastTransitionTime` stable: a condition whose status did
 * not change keeps the time it last changed, so re-running a reconcile (a controller restart, a
 * periodic resync) rewrites nothing.
 */
import type { V1Condition } from "@kubernetes/client-node";
import type { ConditionStatus } from "../api/mcs.js";

/** A condition as the controller decides it, before a transition time is attached. */
export interface ConditionSpec {
  /** Condition type, e.g. `Valid`. */
  type: string;
  status: ConditionStatus;
  /** CamelCase reason; several may be joined with commas. */
  reason: string;
  /** Human-readable detail; may be empty. */
  message: string;
  /** `metadata.generation` of the object the condition was computed from, when known. */
  observedGeneration?: number;
}

/** The API server stores `metav1.Time` with whole-second precision. */
export function truncateToSeconds(time: Date): Date {
  return new Date(Math.floor(time.getTime() / 1000) * 1000);
}

/**
 * Reads a timestamp that may be a `Date` (client-node deserialised) or an RFC 3339 string (raw
 * JSON from a watch); undefined when absent or unparsable.
 */
export function toDate(value: unknown): Date | undefined {
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? undefined : value;
  if (typeof value === "string") {
    const parsed = new Date(value);
    return Number.isNaN(parsed.getTime()) ? undefined : parsed;
  }
  return undefined;
}

/**
 * Attaches a transition time to `next`: the previous condition's `lastTransitionTime` when a
 * condition of the same type existed with the same status (and a readable time), otherwise `now`
 * (truncated to seconds, as the API server would store it).
 */
export function withTransitionTime(
  previous: readonly V1Condition[] | undefined,
  next: ConditionSpec,
  now: Date,
): V1Condition {
  const before = previous?.find((condition) => condition.type === next.type);
  const keptTime = before?.status === next.status ? toDate(before.lastTransitionTime) : undefined;
  const condition: V1Condition = {
    type: next.type,
    status: next.status,
    reason: next.reason,
    message: next.message,
    lastTransitionTime: keptTime === undefined ? truncateToSeconds(now) : new Date(keptTime.getTime()),
  };
  if (next.observedGeneration !== undefined) condition.observedGeneration = next.observedGeneration;
  return condition;
}

/**
 * Upserts `next` into `conditions` (by type), keeping the existing transition time when the
 * status is unchanged. Returns a new list; the input is not modified. Order is preserved and a
 * new type is appended.
 */
export function setCondition(
  conditions: readonly V1Condition[] | undefined,
  next: ConditionSpec,
  now: Date,
): V1Condition[] {
  const updated = withTransitionTime(conditions, next, now);
  const list = [...(conditions ?? [])];
  const index = list.findIndex((condition) => condition.type === next.type);
  if (index === -1) list.push(updated);
  else list[index] = updated;
  return list;
}

function sameInstant(a: unknown, b: unknown): boolean {
  return toDate(a)?.getTime() === toDate(b)?.getTime();
}

function conditionEqual(a: V1Condition, b: V1Condition): boolean {
  return (
    a.status === b.status &&
    a.reason === b.reason &&
    (a.message ?? "") === (b.message ?? "") &&
    a.observedGeneration === b.observedGeneration &&
    sameInstant(a.lastTransitionTime, b.lastTransitionTime)
  );
}

/**
 * Whether two condition lists say the same thing: same set of types, and per type the same
 * status, reason, message, observedGeneration and transition instant (a `Date` and the RFC 3339
 * string of the same instant are equal). Order is ignored. Lets a caller skip a no-op status write.
 */
export function conditionsEqual(
  a: readonly V1Condition[] | undefined,
  b: readonly V1Condition[] | undefined,
): boolean {
  const left = a ?? [];
  const right = b ?? [];
  if (left.length !== right.length) return false;
  const byType = new Map(right.map((condition) => [condition.type, condition]));
  if (byType.size !== right.length) return false;
  return left.every((condition) => {
    const other = byType.get(condition.type);
    return other !== undefined && conditionEqual(condition, other);
  });
}
