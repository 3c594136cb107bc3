/** errorText: the SDK's messages name CLI commands; the app names its own buttons instead. */
import { describe, expect, it } from 'vitest';
import { errorText, Txt } from '../src/ui.tsx';

describe('errorText', () => {
  it('points at the app’s actions, not at CLI commands', () => {
    const suspended = new Error(
      'channel c_x is suspended since 2026-12-08T00:00:00.000Z (strike); reopen it with `backchannel channel reopen c_x`, or propose to with `backchannel outreach c_x --note …`',
    );
    expect(errorText(suspended)).toBe(
      'channel c_x is suspended since 2026-12-08T00:00:00.000Z (strike); reopen it with “Reopen channel” on the channel, or propose to with a new outreach to them (Channels)',
    );
    expect(errorText(new Error('ask for a new invite (`backchannel device add`)'))).toBe(
      'ask for a new invite (“Add a device” under Members & devices)',
    );
    // A command the app has no name for stays as it is; text without one is untouched.
    expect(errorText(new Error('run `backchannel witness`'))).toBe('run `backchannel witness`');
    expect(errorText('plain words')).toBe('plain words');
  });
});

describe('Txt', () => {
  it('shows direction overrides as marks and leaves other text as it is', () => {
    expect(Txt({ text: 'plain' })).toBe('plain');
    expect(Txt({ text: undefined })).toBe('');
    const marked = Txt({ text: 'a\u202Eb' }) as { props: { children: unknown[] } };
    const parts = marked.props.children as Array<string | { props: { children: unknown[] } }>;
    expect(parts[0]).toBe('a');
    expect(parts[2]).toBe('b');
    expect((parts[1] as { props: { children: unknown[] } }).props.children).toEqual(['[', 'U+202E', ']']);
  });
});
