/** Route guards: signed-request authentication and per-device and per-address rate limits. */
import type { Context, MiddlewareHandler } from 'hono';
import { RelayError } from '../errors.ts';
import { REQUEST_HEADERS } from './auth.ts';
import type { AppDeps, RelayEnv } from './context.ts';

/** The path and query exactly as the client sent them (what it signed). */
export function pathWithQuery(url: string): string {
  const start = url.indexOf('/', url.indexOf('//') + 2);
  return start < 0 ? '/' : url.slice(start);
}

/** The client's address, the key of the per-address buckets. */
export function clientAddress(deps: AppDeps, c: Context): string {
  return deps.clientAddress?.(c) ?? 'local';
}

export function rateLimited(retryAfterMs: number): RelayError {
  return new RelayError('RATE_LIMITED', 'too many requests; slow down', { retryAfterMs });
}

/**
 * Requires a signed request from a registered, valid device; sets c.var.device. With
 * `optional`, an unsigned request passes through without c.var.device (envelope posts, which
 * the envelope signature authenticates).
 */
export function authenticated(
  deps: AppDeps,
  /**
   * `clusterWide: false`: the signature is checked against this node's replay cache only, not the
   * cluster's shared record (for idempotent requests, where a replay gets the original answer).
   */
  opts: { optional?: boolean; clusterWide?: boolean } = {},
): MiddlewareHandler<RelayEnv> {
  return async (c, next) => {
    if (
      opts.optional === true &&
      c.req.header(REQUEST_HEADERS.device) === undefined &&
      c.req.header(REQUEST_HEADERS.sig) === undefined
    ) {
      return next();
    }
    const now = deps.now();
    const device = await deps.auth.verify(
      {
        device: c.req.header(REQUEST_HEADERS.device),
        time: c.req.header(REQUEST_HEADERS.time),
        sig: c.req.header(REQUEST_HEADERS.sig),
      },
      c.req.method,
      pathWithQuery(c.req.url),
      c.var.rawBody,
      now,
      {
        clusterWide: opts.clusterWide !== false,
        admit: (rec) => {
          limitDevice(deps, rec.device, now);
          if (isWrite(c.req.method)) limitWrite(deps, rec.device, now);
        },
      },
    );
    c.set('device', device);
    return next();
  };
}

/**
 * For the unsigned directory posts (cards, device certificates, revocations), where nothing but
 * the address names the poster: a token from the address's own bucket, apart from signed
 * traffic, taken before the body is read or a signature checked.
 */
export function unsignedPost(deps: AppDeps): MiddlewareHandler<RelayEnv> {
  return async (c, next) => {
    const wait = deps.limiters.unsigned.take(clientAddress(deps, c), deps.now());
    if (wait > 0) {
      deps.metrics.rateLimited.inc({ scope: 'unsigned' });
      throw rateLimited(wait);
    }
    return next();
  };
}

function isWrite(method: string): boolean {
  return method !== 'GET' && method !== 'HEAD' && method !== 'OPTIONS';
}

/** Takes a token from the device's write bucket (state-changing requests) or refuses with RATE_LIMITED. */
export function limitWrite(deps: AppDeps, device: string, now: number): void {
  const wait = deps.limiters.writes.take(device, now);
  if (wait > 0) {
    deps.metrics.rateLimited.inc({ scope: 'writes' });
    throw rateLimited(wait);
  }
}

/** Takes a token from the device's bucket or refuses with RATE_LIMITED. */
export function limitDevice(deps: AppDeps, device: string, now: number): void {
  const wait = deps.limiters.device.take(device, now);
  if (wait > 0) {
    deps.metrics.rateLimited.inc({ scope: 'device' });
    throw rateLimited(wait);
  }
}
