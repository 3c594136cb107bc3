/** Prometheus metrics of one relay (its own registry, so several relays can run in one process). */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { AppenderMetrics } from './channels/appender.ts';

export class RelayMetrics implements AppenderMetrics {
  readonly registry = new Registry();
  readonly requests: Counter<'method' | 'route' | 'status'>;
  readonly appends: Counter<'result'>;
  readonly batchSize: Histogram;
  readonly commitSeconds: Histogram;
  readonly wsConnections: Gauge;
  readonly wsSubscribers: Gauge;
  readonly wsDropped: Counter;
  readonly rateLimited: Counter<'scope'>;
  readonly refusals: Counter<'code' | 'via'>;

  constructor(opts: { defaultMetrics?: boolean } = {}) {
    const registers = [this.registry];
    if (opts.defaultMetrics === true) collectDefaultMetrics({ register: this.registry, prefix: 'bc_' });
    this.requests = new Counter({
      name: 'bc_http_requests_total',
      help: 'HTTP requests by route and status',
      labelNames: ['method', 'route', 'status'],
      registers,
    });
    this.appends = new Counter({
      name: 'bc_appends_total',
      help: 'Envelope appends by result (accepted, duplicate retry, rejected)',
      labelNames: ['result'],
      registers,
    });
    this.batchSize = new Histogram({
      name: 'bc_append_batch_size',
      help: 'Appends per group-commit batch',
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024],
      registers,
    });
    this.commitSeconds = new Histogram({
      name: 'bc_append_commit_seconds',
      help: 'Group-commit transaction time, fsync included',
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1],
      registers,
    });
    this.wsConnections = new Gauge({
      name: 'bc_ws_connections',
      help: 'Open WebSocket connections',
      registers,
    });
    this.wsSubscribers = new Gauge({ name: 'bc_ws_subscribers', help: 'Channel subscriptions', registers });
    this.wsDropped = new Counter({
      name: 'bc_ws_dropped_slow_total',
      help: 'Subscribers dropped for falling too far behind',
      registers,
    });
    this.rateLimited = new Counter({
      name: 'bc_rate_limited_total',
      help: 'Requests refused by a rate limit',
      labelNames: ['scope'],
      registers,
    });
    this.refusals = new Counter({
      name: 'bc_refusals_total',
      help: 'Requests and frames refused, by error code and by how they came (http, ws)',
      labelNames: ['code', 'via'],
      registers,
    });
  }

  /** One refusal answered with `code` (a RelayErrorCode: a bounded set of label values). */
  refused(code: string, via: 'http' | 'ws'): void {
    this.refusals.inc({ code, via });
  }

  batch(size: number, commitSeconds: number): void {
    this.batchSize.observe(size);
    this.commitSeconds.observe(commitSeconds);
  }

  outcome(kind: 'accepted' | 'duplicate' | 'rejected', n: number): void {
    if (n > 0) this.appends.inc({ result: kind }, n);
  }
}
