/**
 * Signed requests (PROTOCOL.md §11): the exact bytes a device signs, and that a signature binds
 * the method, path, time, body and the relay's name — one made for another relay does not verify.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fromHex, toBase64url, toHex, utf8 } from '../../src/bytes/index.ts';
import { isProtocolError } from '../../src/errors.ts';
import type { DeviceId } from '../../src/ids.ts';
import { keyPairFromSeed, labelledMessage } from '../../src/identity/keys.ts';
import {
  REQUEST_HEADERS,
  requestHeaders,
  requestSigningBody,
  signRequest,
  verifyRequest,
} from '../../src/identity/request.ts';

const kp = keyPairFromSeed(new Uint8Array(32).fill(9));
const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

describe('signed requests', () => {
  it('sign CBOR([METHOD, pathWithQuery, time, SHA-256(body), relay]) under the request label', () => {
    // Built by hand: array(5), "GET", "/v1/x", 1, bytes(32) SHA-256(""), "r".
    const expected = `85${'63474554'}${'652f76312f78'}01${'5820'}${EMPTY_SHA256}${'6172'}`;
    expect(toHex(requestSigningBody('get', '/v1/x', 1, new Uint8Array(0), 'r'))).toBe(expected);
    // ['backchannel/v1 request', bytes]: the context string is unchanged, the body has five fields.
    const msg = labelledMessage('request', fromHex(expected));
    expect(toHex(msg.slice(0, 24))).toBe(`82${'76'}${toHex(utf8('backchannel/v1 request'))}`);
    const sig = signRequest(kp.secretKey, 'GET', '/v1/x', 1, new Uint8Array(0), 'r');
    expect(verifyRequest(kp.publicKey, 'GET', '/v1/x', 1, new Uint8Array(0), 'r', sig)).toBe(true);
  });

  it('is a fixed vector (Ed25519 is deterministic)', () => {
    const body = utf8('{"party":"p_x"}');
    const sig = signRequest(
      kp.secretKey,
      'POST',
      '/v1/key-packages/claim',
      1_700_000_000_000,
      body,
      'relay.example',
    );
    expect(toBase64url(sig)).toBe(
      '5PrettQCud6y895l0SKFhcCpIk73Az5KMxx-h-LA4nGqjVpEAMkEYk254WrdvlqsBogqUyyDjeHLgcPt3boXDw',
    );
  });

  it('a signature made for one relay does not verify for another, nor for any other field', () => {
    fc.assert(
      fc.property(
        fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'WS'),
        fc.string({ maxLength: 40 }),
        fc.nat({ max: 2 ** 52 }),
        fc.uint8Array({ maxLength: 64 }),
        fc.stringMatching(/^[a-z0-9.-]{1,20}$/),
        fc.stringMatching(/^[a-z0-9.-]{1,20}$/),
        (method, path, time, body, relay, other) => {
          const sig = signRequest(kp.secretKey, method, path, time, body, relay);
          expect(verifyRequest(kp.publicKey, method, path, time, body, relay, sig)).toBe(true);
          if (other !== relay)
            expect(verifyRequest(kp.publicKey, method, path, time, body, other, sig)).toBe(false);
          expect(verifyRequest(kp.publicKey, method, `${path}?`, time, body, relay, sig)).toBe(false);
          expect(verifyRequest(kp.publicKey, method, path, time + 1, body, relay, sig)).toBe(false);
          expect(verifyRequest(kp.publicKey, method, path, time, Uint8Array.of(...body, 0), relay, sig)).toBe(
            false,
          );
        },
      ),
      { numRuns: 30 },
    );
  });

  it('the WebSocket auth frame is bound to the relay the same way (method WS, path /v1/ws)', () => {
    const sig = signRequest(kp.secretKey, 'WS', '/v1/ws', 5, new Uint8Array(0), 'relay-a.example');
    expect(verifyRequest(kp.publicKey, 'WS', '/v1/ws', 5, new Uint8Array(0), 'relay-a.example', sig)).toBe(
      true,
    );
    expect(verifyRequest(kp.publicKey, 'WS', '/v1/ws', 5, new Uint8Array(0), 'relay-b.example', sig)).toBe(
      false,
    );
  });

  it('the headers carry the device, the time and the signature for that relay', () => {
    const h = requestHeaders(
      'd_x' as DeviceId,
      kp.secretKey,
      'GET',
      '/v1/inbox?after=0',
      42,
      new Uint8Array(0),
      'r',
    );
    expect(h[REQUEST_HEADERS.device]).toBe('d_x');
    expect(h[REQUEST_HEADERS.time]).toBe('42');
    const sig = Buffer.from(h[REQUEST_HEADERS.sig] as string, 'base64url');
    expect(verifyRequest(kp.publicKey, 'GET', '/v1/inbox?after=0', 42, new Uint8Array(0), 'r', sig)).toBe(
      true,
    );
  });

  it('refuses to sign for no relay or a malformed name (misuse throws)', () => {
    for (const bad of ['', 'has space', 'a+b', 'a\u2014b', undefined as unknown as string]) {
      let thrown: unknown;
      try {
        signRequest(kp.secretKey, 'GET', '/v1/x', 1, new Uint8Array(0), bad);
      } catch (e) {
        thrown = e;
      }
      expect(isProtocolError(thrown) && thrown.code).toBe('KEY_INVALID');
    }
  });
});
