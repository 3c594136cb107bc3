/**
 * Request bodies: a size cap on every route (Content-Length checked first, then the bytes
 * actually read), JSON parsed once with `__proto__` refused, the raw bytes kept for signature
 * checks. Malformed JSON is BODY_MALFORMED, never a stack trace.
 */
import type { Context, MiddlewareHandler } from 'hono';
import { RelayError } from '../errors.ts';
import type { AppDeps, RelayEnv } from './context.ts';

const EMPTY = new Uint8Array(0);
const utf8 = new TextDecoder('utf-8', { fatal: true });

export function isJsonType(contentType: string | undefined): boolean {
  return contentType !== undefined && /^application\/([a-z0-9.-]+\+)?json\s*(;|$)/i.test(contentType);
}

/** Parses JSON, refusing any `__proto__` key (escaped or not). */
export function parseJsonSafe(text: string): unknown {
  try {
    if (!text.includes('__proto__') && !text.includes('\\u')) return JSON.parse(text);
    return JSON.parse(text, (k, v: unknown) => {
      if (k === '__proto__') throw new RelayError('BODY_MALFORMED', 'forbidden key __proto__');
      return v;
    });
  } catch (e) {
    if (e instanceof RelayError) throw e;
    throw new RelayError('BODY_MALFORMED', 'request body is not valid JSON');
  }
}

/** Reads a Web-standard request body with a cap. */
export async function readWebBody(c: Context, max: number): Promise<Uint8Array> {
  const stream = c.req.raw.body;
  if (stream === null) return EMPTY;
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let n = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    n += value.length;
    if (n > max) {
      await reader.cancel();
      throw new RelayError('BODY_TOO_LARGE', `request body exceeds ${max} bytes`);
    }
    chunks.push(value);
  }
  if (chunks.length === 1) return chunks[0] as Uint8Array;
  const out = new Uint8Array(n);
  let off = 0;
  for (const ch of chunks) {
    out.set(ch, off);
    off += ch.length;
  }
  return out;
}

/** Route middleware: reads and caps the body; pre-parses JSON safely for the route's validator. */
export function body(deps: AppDeps, max: number): MiddlewareHandler<RelayEnv> {
  return async (c, next) => {
    const method = c.req.method;
    if (method === 'GET' || method === 'HEAD') {
      c.set('rawBody', EMPTY);
      return next();
    }
    const declared = c.req.header('content-length');
    if (declared !== undefined && Number(declared) > max) {
      throw new RelayError('BODY_TOO_LARGE', `request body exceeds ${max} bytes`);
    }
    const bytes = await (deps.readBody ?? readWebBody)(c, max);
    c.set('rawBody', bytes);
    if (isJsonType(c.req.header('content-type'))) {
      let text: string;
      try {
        text = utf8.decode(bytes);
      } catch {
        throw new RelayError('BODY_MALFORMED', 'request body is not UTF-8');
      }
      if (text.length === 0) throw new RelayError('BODY_MALFORMED', 'request body is empty');
      parseJsonSafe(text);
      // The route's zod validator reads the body through Hono's cache: hand it the checked text.
      // (Hono keeps promises in bodyCache although its type says string.)
      c.req.bodyCache.text = Promise.resolve(text) as unknown as string;
    }
    // The stream is consumed: later readers (the media-type gate asks whether a body without a
    // content type is empty) must get the bytes from the cache, not a "body already read" TypeError.
    const buffer = bytes.slice().buffer;
    c.req.bodyCache.arrayBuffer = Promise.resolve(buffer) as unknown as ArrayBuffer;
    return next();
  };
}
