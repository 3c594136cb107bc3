// @backchannel/protocol/group — MLS (RFC 9420) groups via ts-mls, hardened and typed.
export { decodeMls, MAX_MLS_MESSAGE_BYTES, type MlsHeader, peekMlsHeader } from './header.ts';
export {
  decodeKeyPackage,
  decodePrivateKeyPackage,
  encodeKeyPackage,
  encodePrivateKeyPackage,
  generateDeviceKeyPackage,
  KEY_PACKAGE_LIFETIME_S,
  type KeyPackageBundle,
  keyPackageIdentity,
} from './key-package.ts';
export {
  COMPAT_SUITE,
  DEFAULT_SUITE,
  type GroupConfig,
  type GroupPolicy,
  GroupSession,
  type Incoming,
  type Member,
  suiteImpl,
} from './session.ts';
