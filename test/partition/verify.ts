// What the partition test checks on the server after a round: the file both nodes appended to.

/** The records an application was told were durable, from its progress file ("d FROM TO" lines). */
export function durableRecords(progress: string): Set<number> {
  const durable = new Set<number>();
  for (const m of progress.matchAll(/^d (\d+) (\d+)$/gm)) for (let seq = Number(m[1]); seq <= Number(m[2]); seq++) durable.add(seq);
  return durable;
}

/**
 * The problems with the file on the server, given what the old holder (A) was told was durable and
 * how many records the new holder (B) wrote with an fsync each:
 * - a torn record (not one whole 64-byte record: two writers' bytes mixed);
 * - a record of A after B's first record (A wrote after B took the volume: the corruption);
 * - a record of B lost, duplicated or out of order;
 * - a record of A that A was told was durable, missing.
 */
export function verifyRound(file: string, durableA: ReadonlySet<number>, recordsB: number): string[] {
  const problems: string[] = [];
  const lines = file.split('\n');
  if (lines.at(-1) === '') lines.pop();
  else if (lines.length) problems.push(`the file ends in a partial record (${JSON.stringify(lines.at(-1)!.slice(0, 20))}…)`);
  const records: { who: string; seq: number }[] = [];
  lines.forEach((line, i) => {
    const m = /^([AB]) (\d{8}) \.+$/.exec(line);
    if (!m || line.length !== 63) problems.push(`record ${i} is torn: ${JSON.stringify(line.slice(0, 30))}…`);
    else records.push({ who: m[1]!, seq: Number(m[2]) });
  });
  const firstB = records.findIndex((r) => r.who === 'B');
  if (firstB >= 0) {
    const lateA = records.slice(firstB).filter((r) => r.who === 'A');
    if (lateA.length) problems.push(`${lateA.length} records of A landed after B's first record (A's ${lateA[0]!.seq}…${lateA.at(-1)!.seq})`);
  }
  const b = records.filter((r) => r.who === 'B').map((r) => r.seq);
  const expectedB = Array.from({ length: recordsB }, (_, i) => i + 1);
  if (b.join() !== expectedB.join()) problems.push(`B's records are not exactly 1..${recordsB} in order: ${b.length} found${b.length ? `, ${b.slice(0, 3).join(',')}…` : ''}`);
  const a = new Set(records.filter((r) => r.who === 'A').map((r) => r.seq));
  const missing = [...durableA].filter((seq) => !a.has(seq));
  if (missing.length) problems.push(`${missing.length} records A was told were durable are missing (first ${missing[0]})`);
  return problems;
}
