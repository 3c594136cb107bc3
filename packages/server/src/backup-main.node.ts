/**
 * The process entry of `backchannel relay-backup` and `relay-restore` (the CLI runs it as a
 * child, as it runs the relay): `backup --data DIR --out DIR [--checkpoint-key FILE]` or
 * `restore --from DIR --data DIR [--checkpoint-key FILE]`. Prints the backup's manifest as one
 * JSON line on stdout; a failure is one line `error CODE: message` on stderr, exit 1 for
 * INVALID_ARGUMENT (fix the command) and 2 for BACKUP_INVALID.
 */
import { parseArgs } from 'node:util';
import { BackupError, backupRelay, restoreRelay } from './backup.node.ts';

function main(): void {
  const { values, positionals } = parseArgs({
    args: process.argv.slice(2),
    options: {
      data: { type: 'string' },
      out: { type: 'string' },
      from: { type: 'string' },
      'checkpoint-key': { type: 'string' },
    },
    allowPositionals: true,
    strict: true,
  });
  const [verb] = positionals;
  const key = values['checkpoint-key'];
  const need = (name: 'data' | 'out' | 'from'): string => {
    const v = values[name];
    if (v === undefined || v === '') throw new BackupError('INVALID_ARGUMENT', `--${name} is required`);
    return v;
  };
  const manifest =
    verb === 'backup'
      ? backupRelay({
          dataDir: need('data'),
          out: need('out'),
          ...(key === undefined ? {} : { checkpointKeyFile: key }),
        })
      : verb === 'restore'
        ? restoreRelay({
            from: need('from'),
            dataDir: need('data'),
            ...(key === undefined ? {} : { checkpointKeyFile: key }),
          })
        : undefined;
  if (manifest === undefined)
    throw new BackupError('INVALID_ARGUMENT', 'the first argument is backup or restore');
  process.stdout.write(`${JSON.stringify(manifest)}\n`);
}

try {
  main();
} catch (e) {
  const errno = (e as { code?: unknown }).code;
  // A BackupError says its code; a bad flag or a file the OS refused (EACCES, ENOSPC…) is fixed
  // on the command line; anything else is the relay's store failing.
  const code =
    e instanceof BackupError
      ? e.code
      : typeof errno === 'string' && (errno.startsWith('ERR_PARSE_ARGS') || /^E[A-Z]+$/.test(errno))
        ? 'INVALID_ARGUMENT'
        : 'RELAY_ERROR';
  const message = (e as Error).message.replace(/\s+/g, ' ');
  process.stderr.write(`error ${code}: ${message}\n`);
  process.exitCode = code === 'INVALID_ARGUMENT' ? 1 : 2;
}
