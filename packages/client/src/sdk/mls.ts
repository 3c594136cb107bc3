/**
 * The SDK's view of an MLS group (one per channel). The implementation wraps
 * @backchannel/protocol/group's GroupSession; the channel engine only sees this interface.
 */
import type { DeviceCertificate, DeviceId } from '@backchannel/protocol';

export type Processed =
  | { readonly kind: 'application'; readonly plaintext: Uint8Array; readonly authenticatedData: Uint8Array }
  | {
      readonly kind: 'commit';
      readonly epoch: number;
      readonly added: readonly DeviceId[];
      readonly removed: readonly DeviceId[];
      readonly removedSelf: boolean;
    };

export interface MlsGroup {
  readonly epoch: number;
  readonly groupId: Uint8Array;
  members(): ReadonlyArray<{ device: DeviceId; certificate: DeviceCertificate }>;
  /** `authenticatedData` travels in clear inside the MLS message, authenticated by the sender. */
  encrypt(plaintext: Uint8Array, authenticatedData: Uint8Array): Promise<Uint8Array>;
  process(mls: Uint8Array): Promise<Processed>;
  add(keyPackages: readonly Uint8Array[]): Promise<{ commit: Uint8Array; welcome: Uint8Array }>;
  remove(devices: readonly DeviceId[]): Promise<{ commit: Uint8Array }>;
  /** One commit that removes `devices` and adds the owners of `keyPackages`. */
  replace(
    devices: readonly DeviceId[],
    keyPackages: readonly Uint8Array[],
  ): Promise<{ commit: Uint8Array; welcome: Uint8Array }>;
  selfUpdate(): Promise<{ commit: Uint8Array }>;
  exportState(): Uint8Array;
  /** 32 bytes both sides can compare out of band (MLS epoch authenticator). */
  epochAuthenticator(): Uint8Array;
}

export interface GeneratedKeyPackage {
  readonly publicBytes: Uint8Array;
  readonly privateBytes: Uint8Array;
}

export interface MlsFactory {
  generateKeyPackage(lastResort: boolean): Promise<GeneratedKeyPackage>;
  create(groupId: Uint8Array, own: GeneratedKeyPackage): Promise<MlsGroup>;
  join(
    welcome: Uint8Array,
    candidates: readonly GeneratedKeyPackage[],
  ): Promise<{ group: MlsGroup; used: number }>;
  restore(state: Uint8Array): Promise<MlsGroup>;
}
