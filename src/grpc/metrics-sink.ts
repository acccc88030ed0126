/**
 * What the driver records its metrics into: the Prometheus registry of metrics.ts when
 * --metrics-address serves them, else QUIET_METRICS, which records nothing (no one could read it)
 * and spares the process loading prom-client at all.
 */
type Labels = Record<string, string | number>;

export interface CounterSink {
  inc(labels: Labels, value?: number): void;
}

export interface MetricsSink {
  calls: CounterSink;
  errors: CounterSink;
  latency: { observe(labels: Labels, value: number): void };
  takeovers: CounterSink;
  fences: CounterSink;
  renewalFailures: CounterSink;
  leasesHeld: { set(value: number): void };
  recoveries: CounterSink;
}

const nothing = { inc: () => undefined, observe: () => undefined, set: () => undefined };

export const QUIET_METRICS: MetricsSink = {
  calls: nothing,
  errors: nothing,
  latency: nothing,
  takeovers: nothing,
  fences: nothing,
  renewalFailures: nothing,
  leasesHeld: nothing,
  recoveries: nothing,
};
