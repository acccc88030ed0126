// The one table `npm run bench` prints: each row a metric measured on tether and on the baseline it
// is held against (in the same run), their ratio, the issue's target and whether it is met.

export type Direction = 'higher' | 'lower';

/** What a row must reach: a bound on tether's own number and/or on the ratio tether/baseline. */
export interface Target {
  /** tether ≥ value (direction higher) or ≤ value (lower), in the row's unit. */
  absolute?: number;
  /** tether/baseline ≥ (higher) or ≤ (lower) this. */
  ratio?: number;
}

export interface Row {
  suite: string;
  metric: string;
  unit: string;
  /** Whether a higher number is better (throughput) or a lower one (latency, memory). */
  better: Direction;
  baselineName: string;
  /** NaN when the row has no baseline (a bound of tether's own). */
  baseline: number;
  tether: number;
  target: Target;
  /** How the samples were taken: "median of 7", "p99 of 2,000 calls"… */
  note?: string;
}

export const ratioOf = (row: Row) => row.tether / row.baseline;

/** True if the row meets every bound of its target; undefined if it has none, or a number it needs is missing. */
export function met(row: Row): boolean | undefined {
  const checks: boolean[] = [];
  const ok = (value: number, bound: number) => (row.better === 'higher' ? value >= bound : value <= bound);
  if (row.target.absolute !== undefined) {
    if (!Number.isFinite(row.tether)) return undefined;
    checks.push(ok(row.tether, row.target.absolute));
  }
  if (row.target.ratio !== undefined) {
    if (!Number.isFinite(ratioOf(row))) return undefined;
    checks.push(ok(ratioOf(row), row.target.ratio));
  }
  return checks.length ? checks.every(Boolean) : undefined;
}

const hasTarget = (row: Row) => row.target.absolute !== undefined || row.target.ratio !== undefined;

export const fmt = (x: number) => (!Number.isFinite(x) ? '—' : Math.abs(x) >= 100 ? x.toFixed(0) : Math.abs(x) >= 10 ? x.toFixed(1) : x.toFixed(2));

export function targetText(row: Row): string {
  const sign = row.better === 'higher' ? '≥' : '≤';
  const parts: string[] = [];
  if (row.target.absolute !== undefined) parts.push(`${sign} ${fmt(row.target.absolute)} ${row.unit}`);
  if (row.target.ratio !== undefined) parts.push(`${sign} ${row.target.ratio.toFixed(2)}×`);
  return parts.join(' and ') || '—';
}

/** The table as Markdown (it reads as plain text too). */
export function table(rows: Row[]): string {
  const header = ['metric', 'baseline', 'baseline value', 'tether', 'ratio', 'target', 'met'];
  const cells = rows.map((r) => {
    const m = met(r);
    return [
      `${r.suite}: ${r.metric}${r.note ? ` (${r.note})` : ''}`,
      r.baselineName || '—',
      Number.isFinite(r.baseline) ? `${fmt(r.baseline)} ${r.unit}` : '—',
      `${fmt(r.tether)} ${r.unit}`,
      Number.isFinite(ratioOf(r)) ? `${ratioOf(r).toFixed(2)}×` : '—',
      targetText(r),
      !hasTarget(r) ? '—' : m === undefined ? '?' : m ? 'yes' : 'NO',
    ];
  });
  const all = [header, ...cells];
  const widths = header.map((_, c) => Math.max(...all.map((r) => r[c]!.length)));
  const numeric = new Set([2, 3, 4]);
  const line = (r: string[]) => `| ${r.map((v, c) => (numeric.has(c) ? v.padStart(widths[c]!) : v.padEnd(widths[c]!))).join(' | ')} |`;
  const rule = `|${widths.map((w, c) => (numeric.has(c) ? `${'-'.repeat(w + 1)}:` : '-'.repeat(w + 2))).join('|')}|`;
  return [line(header), rule, ...cells.map(line)].join('\n');
}
