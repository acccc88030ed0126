// What the fuzz test saw: status codes per method, and each call that broke a rule, grouped so the
// report shows each distinct fault once with how often it happened and which values caused it.
import { describeCall, type Call } from './calls.js';
import { codeName } from './codes.js';
import { RULES } from './judge.js';
import type { Outcome } from './transport.js';

const SLOWEST_KEPT = 8;

export interface Failure {
  rule: string;
  call: Call;
  outcome: Outcome;
}

/** The first 120 characters of a message with numbers and long runs of one character folded, so alike messages group together. */
export function messageShape(details: string): string {
  return details
    .replace(/(.)\1{7,}/gsu, '$1…')
    .replace(/\d+/g, 'N')
    .replace(/\s+/g, ' ')
    .slice(0, 120);
}

/** A value cut to `max` characters, saying how long it was. */
export const snippet = (s: string, max = 160) => (s.length > max ? `${JSON.stringify(s.slice(0, max))}…(${s.length} chars)` : JSON.stringify(s));

export class Ledger {
  private readonly codes = new Map<string, Map<string, number>>();
  /** Total and longest answer time per method, in ms. */
  private readonly times = new Map<string, { total: number; max: number }>();
  readonly failures: Failure[] = [];
  /** Calls that ended at their deadline: allowed, but counted and bounded. */
  readonly deadlines: Call[] = [];
  /** Stalled calls that stall again when sent alone: the likely causes of the stalls (see isolateStalls). */
  readonly stallCauses: string[] = [];
  calls = 0;

  /** The slowest calls, slowest first (a slow call next to a deadline shows what the driver was busy with). */
  readonly slowest: { call: Call; outcome: Outcome }[] = [];

  record(call: Call, outcome: Outcome): void {
    this.calls++;
    this.slowest.push({ call, outcome });
    this.slowest.sort((a, b) => b.outcome.ms - a.outcome.ms).splice(SLOWEST_KEPT);
    const perMethod = this.codes.get(call.method.name) ?? new Map<string, number>();
    const name = codeName(outcome.code);
    perMethod.set(name, (perMethod.get(name) ?? 0) + 1);
    this.codes.set(call.method.name, perMethod);
    const time = this.times.get(call.method.name) ?? { total: 0, max: 0 };
    this.times.set(call.method.name, { total: time.total + outcome.ms, max: Math.max(time.max, outcome.ms) });
  }

  fail(rule: string, call: Call, outcome: Outcome): void {
    this.failures.push({ rule, call, outcome });
  }

  count(rule: string): number {
    return this.failures.filter((f) => f.rule === rule).length;
  }

  /** Calls per method and status code, with mean and longest answer time, one line per method. */
  codeTable(): string[] {
    return [...this.codes.entries()]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([method, codes]) => {
        const total = [...codes.values()].reduce((a, b) => a + b, 0);
        const time = this.times.get(method)!;
        const parts = [...codes.entries()].sort((a, b) => b[1] - a[1]).map(([code, n]) => `${code} ${n}`);
        return `  ${method.padEnd(31)} ${String(total).padStart(5)}  ${`${Math.round(time.total / total)}/${time.max} ms`.padStart(13)}  ${parts.join(', ')}`;
      });
  }

  /**
   * The failures grouped by rule, method, code and message shape, biggest first; each with the
   * value kinds most of its calls share (the likely cause) and its first call, described.
   */
  failureGroups(maxShown: number): string[] {
    const groups = new Map<string, Failure[]>();
    for (const f of this.failures) {
      // A broken connection fails whatever was in flight: one group for all methods.
      const method = f.rule === RULES.connection ? 'any method' : f.call.method.name;
      const key = `${f.rule} | ${method} | ${codeName(f.outcome.code)} | ${messageShape(f.outcome.details)}`;
      groups.set(key, [...(groups.get(key) ?? []), f]);
    }
    const sorted = [...groups.entries()].sort((a, b) => b[1].length - a[1].length);
    const more = sorted.length > maxShown ? [`  …and ${sorted.length - maxShown} more group(s) of ${sorted.slice(maxShown).reduce((n, [, m]) => n + m.length, 0)} call(s)`] : [];
    return sorted
      .slice(0, maxShown)
      .flatMap(([key, members]) => {
        const first = members[0]!;
        return [
          `  ${members.length}× ${key}`,
          `      value kinds: ${commonNotes(members)}`,
          `      first: ${describeCall(first.call)}`,
          `      answer: ${codeName(first.outcome.code)} after ${first.outcome.ms} ms: ${snippet(first.outcome.details)}`,
        ];
      })
      .concat(more);
  }
}

/** The notes (field=kind) most frequent among the group's calls, with their share. */
function commonNotes(members: readonly Failure[]): string {
  const counts = new Map<string, number>();
  for (const { call } of members) {
    for (const note of new Set(call.notes.length ? call.notes : [call.kind])) counts.set(note, (counts.get(note) ?? 0) + 1);
  }
  const top = [...counts.entries()].sort((a, b) => b[1] - a[1]).slice(0, 3);
  return top.map(([note, n]) => `${note} (${n}/${members.length})`).join(', ') || '(none)';
}
