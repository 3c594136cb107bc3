/**
 * The `backchannel` command tree. Every command takes --json; exit codes:
 * 0 ok · 1 usage or bad input · 2 refused (by the relay or the channel rules) ·
 * 3 relay unreachable (retry later; sends stay in the outbox) · 4 security alarm
 * (forked or invalid transcript) · 5 device not initialized.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { docCommands } from './commands/doc.ts';
import { identityCommands, type Runner } from './commands/identity.ts';
import { proofsCommands } from './commands/proofs.ts';
import { relayCommands } from './commands/relay.ts';
import { talkCommands } from './commands/talk.ts';
import { watchCommands } from './commands/watch.ts';
import type { GlobalOptions } from './device.node.ts';
import { makeOut, reportError } from './output.ts';

/**
 * The command tree. `json`: usage errors (unknown command or option, a missing argument) are
 * printed as one JSON line on stdout, like every other error under --json.
 */
export function buildProgram(opts: { json?: boolean } = {}): Command {
  const program = new Command('backchannel')
    .description('Backchannel: an end-to-end encrypted, verifiable negotiation channel')
    .version('0.1.0')
    .option('--home <dir>', 'this device directory (env BACKCHANNEL_HOME, default ~/.backchannel)')
    .option('--passphrase-file <file>', 'file holding the device passphrase (or env BACKCHANNEL_PASSPHRASE)')
    .addOption(
      new Option(
        '--relay <url>',
        'relay endpoint; repeat for failover (default: those of your party)',
      ).argParser((v: string, prev: string[] | undefined) => [...(prev ?? []), relayUrl(v)]),
    )
    .option('--json', 'machine-readable output (one JSON document per line)')
    .showHelpAfterError('(add --help for usage)')
    .addHelpText(
      'after',
      '\nExit codes: 0 ok, 1 usage, 2 refused, 3 relay unreachable, 4 security alarm (fork), 5 not initialized.\n' +
        'Start here: backchannel demo   (plays the reference scenario against a local relay)',
    );

  const run: Runner =
    (fn) =>
    async (...args: unknown[]) => {
      const o = program.opts<GlobalOptions>();
      const out = makeOut(o.json === true);
      try {
        // commander passes (...positionals, options, command): drop the command object.
        await fn(o, out, ...(args.slice(0, -1) as never[]));
      } catch (e) {
        process.exitCode = reportError(e, o.json === true);
      }
    };

  identityCommands(program, run);
  talkCommands(program, run);
  watchCommands(program, run);
  relayCommands(program, run);
  proofsCommands(program, run);
  docCommands(program, run);
  forEachCommand(program, (c) => {
    usageErrors(c, opts.json === true);
    // Each command's help lists the global options too (--json, --home, --passphrase-file, --relay),
    // and says which of its own options it cannot do without.
    c.configureHelp({ showGlobalOptions: true });
    for (const o of c.options)
      if (o.mandatory && !o.description.endsWith('(required)')) o.description += ' (required)';
  });
  return program;
}

/** A relay endpoint is an http(s) URL: `localhost:8787` would only ever be "unreachable". */
function relayUrl(v: string): string {
  let u: URL | undefined;
  try {
    u = new URL(v);
  } catch {
    u = undefined;
  }
  if (u === undefined || (u.protocol !== 'http:' && u.protocol !== 'https:'))
    throw new InvalidArgumentError(`a relay is an http:// or https:// URL (e.g. http://127.0.0.1:8787)`);
  return v;
}

function forEachCommand(c: Command, fn: (c: Command) => void): void {
  fn(c);
  for (const sub of c.commands) forEachCommand(sub, fn);
}

/**
 * Usage errors (unknown command or option, missing argument) in the form of every other error
 * (docs/ERRORS.md): one line `error INVALID_ARGUMENT: …` on stderr, or the JSON error on stdout.
 */
function usageErrors(c: Command, json: boolean): void {
  c.configureOutput({
    outputError: (text) => {
      const said = text
        .trim()
        .replace(/^error: /, '')
        .replace(/\s*\n\s*/g, ' ');
      const message = `${said} (see \`${commandPath(c)} --help\`)`;
      if (json) process.stdout.write(`${JSON.stringify({ error: { code: 'INVALID_ARGUMENT', message } })}\n`);
      else process.stderr.write(`error INVALID_ARGUMENT: ${message}\n`);
    },
    // The "(add --help for usage)" hint after an error: the line above says it. At the terminal
    // the rest goes through (the help a bare command group prints); under --json, nothing.
    writeErr: (text) => {
      if (!json && text.trim() !== '(add --help for usage)') process.stderr.write(text);
    },
  });
}

function commandPath(c: Command): string {
  const names: string[] = [];
  for (let x: Command | null = c; x !== null; x = x.parent) names.unshift(x.name());
  return names.join(' ');
}
