// Per-call overhead: the p99 latency of calls that do no work (Identity Probe, Node
// NodeGetCapabilities) under ghz, 1 and 16 in flight on one connection, tether against the Go
// reference driver (test/clients/csi-reference: grpc-go served like hostpathplugin). Both run at
// their default log levels. Each run takes one ghz sample of every cell from each side, the sides
// taking turns (who goes first rotates per run); a row is the median of the runs' p99s.
import type { Suite } from '../lib/context.js';
import { sshServer } from '../lib/fixture.js';
import type { Row } from '../lib/report.js';
import { CSI_PROTO_FILE, GHZ, goToolsMissing, REFERENCE_NAME, startReference, startTether, type Server } from '../lib/servers.js';
import { median, rotate } from '../lib/stats.js';
import { run } from '../lib/system.js';

const CELLS = [
  { method: 'Probe', call: 'csi.v1.Identity.Probe', inFlight: 1 },
  { method: 'Probe', call: 'csi.v1.Identity.Probe', inFlight: 16 },
  { method: 'NodeGetCapabilities', call: 'csi.v1.Node.NodeGetCapabilities', inFlight: 1 },
  { method: 'NodeGetCapabilities', call: 'csi.v1.Node.NodeGetCapabilities', inFlight: 16 },
] as const;
const TARGET_RATIO = 1.2;

interface GhzReport {
  count: number;
  statusCodeDistribution?: Record<string, number>;
  latencyDistribution?: Array<{ percentage: number; latency: number }> | null;
}

/** ghz's p99 (ms) of `calls` calls of `call`, `inFlight` at once on one connection; fails if any call did not answer OK. */
async function p99(server: Server, call: string, calls: number, inFlight: number): Promise<number> {
  const { stdout } = await run(GHZ, ['--insecure', '--proto', CSI_PROTO_FILE, '--call', call, '-d', '{}', '-n', String(calls), '-c', String(inFlight), '--connections', '1', '-O', 'json', server.endpoint]);
  const report = JSON.parse(String(stdout)) as GhzReport;
  const codes = report.statusCodeDistribution ?? {};
  if (report.count !== calls || Object.keys(codes).some((c) => c !== 'OK')) throw new Error(`ghz ${call} on ${server.endpoint}: ${JSON.stringify(codes)}`);
  const at = report.latencyDistribution?.find((d) => d.percentage === 99);
  if (!at) throw new Error(`ghz ${call}: no p99 in its report`);
  return at.latency / 1e6;
}

export const overhead: Suite = {
  name: 'overhead',
  describe: 'Probe and NodeGetCapabilities p99 under ghz, 1 and 16 in flight, vs the Go reference driver',
  unavailable: goToolsMissing,
  async run(ctx) {
    const sshd = await sshServer(ctx);
    const servers = { tether: await startTether(ctx, sshd, { mode: 'all' }), reference: await startReference(ctx) };
    const calls = ctx.size(4000, 200);
    for (const cell of CELLS) for (const side of ['tether', 'reference'] as const) await p99(servers[side], cell.call, ctx.size(2000, 50), cell.inFlight); // warm (JIT, connection pools)
    const samples = CELLS.map(() => ({ tether: [] as number[], reference: [] as number[] }));
    for (let r = 0; r < ctx.runs; r++) {
      for (const [i, cell] of CELLS.entries()) {
        for (const side of rotate(r + i, ['tether', 'reference'] as const)) samples[i]![side].push(await p99(servers[side], cell.call, calls, cell.inFlight));
      }
      ctx.progress(`run ${r + 1}/${ctx.runs}: p99 ${CELLS.map((c, i) => `${c.method}×${c.inFlight} ${samples[i]!.tether.at(-1)!.toFixed(2)}/${samples[i]!.reference.at(-1)!.toFixed(2)}`).join(', ')} ms (tether/reference)`);
    }
    return CELLS.map((cell, i): Row => ({
      suite: 'overhead',
      metric: `${cell.method} p99, ${cell.inFlight} in flight`,
      unit: 'ms',
      better: 'lower',
      baselineName: REFERENCE_NAME,
      baseline: median(samples[i]!.reference),
      tether: median(samples[i]!.tether),
      target: { ratio: TARGET_RATIO },
      note: `median of ${ctx.runs} runs' p99 of ${calls} calls`,
    }));
  },
};
