import http from 'node:http';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { httpUrl, listenOn } from '../util/listen.js';
import type { MetricsSink } from './metrics-sink.js';

/** Prometheus metrics of one driver process: calls, errors by gRPC code, latency; leases taken over, fences. */
export class Metrics implements MetricsSink {
  readonly registry = new Registry();
  readonly calls = new Counter({
    name: 'tether_csi_calls_total',
    help: 'CSI calls answered, by method and gRPC status code',
    labelNames: ['method', 'code'] as const,
    registers: [this.registry],
  });
  readonly errors = new Counter({
    name: 'tether_csi_errors_total',
    help: 'CSI calls that did not answer OK, by method and gRPC status code',
    labelNames: ['method', 'code'] as const,
    registers: [this.registry],
  });
  readonly latency = new Histogram({
    name: 'tether_csi_call_duration_seconds',
    help: 'Time to answer a CSI call, by method',
    labelNames: ['method'] as const,
    buckets: [0.005, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [this.registry],
  });

  readonly takeovers = new Counter({
    name: 'tether_lease_takeovers_total',
    help: 'Leases taken over from a node that stopped renewing them (watched unrenewed for a full term), by backend',
    labelNames: ['backend'] as const,
    registers: [this.registry],
  });
  readonly fences = new Counter({
    name: 'tether_lease_fences_total',
    help: 'Volumes this node fenced itself off (its lease could not be renewed in time, or was taken), by backend and reason',
    labelNames: ['backend', 'reason'] as const,
    registers: [this.registry],
  });
  readonly renewalFailures = new Counter({
    name: 'tether_lease_renewal_failures_total',
    help: 'Lease renewals that did not go through (the backend did not answer in time), by backend',
    labelNames: ['backend'] as const,
    registers: [this.registry],
  });
  readonly leasesHeld = new Gauge({
    name: 'tether_leases_held',
    help: 'Writer leases this node holds and renews',
    registers: [this.registry],
  });

  readonly recoveries = new Counter({
    name: 'tether_mount_recoveries_total',
    help: 'Staged FUSE (sshfs) volumes whose daemon had died, mounted again with their targets bound again (outcome recovered) or not (failed, tried again), by backend',
    labelNames: ['backend', 'outcome'] as const,
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'tether_' });
  }

  /** Serves GET /metrics on host:port; resolves with the bound address once listening. */
  async serve(address: string): Promise<{ server: http.Server; url: string }> {
    const server = http.createServer((req, res) => {
      if (req.method !== 'GET' || req.url !== '/metrics') {
        res.writeHead(404).end('not found: try GET /metrics\n');
        return;
      }
      this.registry.metrics().then(
        (body) => res.writeHead(200, { 'content-type': this.registry.contentType }).end(body),
        (err: Error) => res.writeHead(500).end(`${err.message}\n`),
      );
    });
    const { host, port } = await listenOn(server, address);
    return { server, url: httpUrl(host, port, '/metrics') };
  }
}
