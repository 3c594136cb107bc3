/**
 * Files a command writes for the user to keep (an exported transcript, a document export): never
 * over an earlier file unless `--force` says so, and never half-written. Each file is written to a
 * temporary file in the same directory, synced, then put in place in one step (a link, which fails
 * if the name was taken meanwhile; with `--force`, a rename over the old file).
 */
import { closeSync, fsyncSync, linkSync, openSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { ClientError } from '../sdk/errors.ts';
import { randomNode } from '../sdk/random.node.ts';

const NO_LINKS: ReadonlySet<string> = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS']);

/** Refuses, before any work, paths that hold a file already (unless `force`), and any directory. */
export function refuseExisting(paths: readonly string[], force: boolean): void {
  const taken = paths.filter((p) => statSync(p, { throwIfNoEntry: false }) !== undefined);
  const dir = taken.find((p) => statSync(p).isDirectory());
  if (dir !== undefined)
    throw new ClientError('INVALID_ARGUMENT', `${dir} is a directory: name a file to write to`);
  if (force || taken.length === 0) return;
  const more = taken.length > 1 ? ` (and ${taken.length - 1} more)` : '';
  throw new ClientError(
    'INVALID_ARGUMENT',
    `${taken[0]} exists already${more}: pass --force to replace it, or choose another --out`,
  );
}

/**
 * Writes `text` to `path`, readable by this user only (mode 0600, whatever the mode of a file it
 * replaces). Without `force`, an existing file is refused (INVALID_ARGUMENT) and left as it was.
 */
export function writeOutFile(path: string, text: string, force: boolean): void {
  if (path.trim() === '')
    throw new ClientError('INVALID_ARGUMENT', 'the file to write to is empty: name one (--out)');
  folderExists(path);
  const tmp = join(dirname(path), `.${basename(path)}.${Buffer.from(randomNode(6)).toString('hex')}.tmp`);
  const fd = openSync(tmp, 'wx', 0o600);
  try {
    try {
      writeSync(fd, text);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    if (force) renameSync(tmp, path);
    else {
      try {
        linkSync(tmp, path);
      } catch (e) {
        const code = (e as { code?: unknown }).code;
        if (code === 'EEXIST') refuseExisting([path], false);
        // A file system without hard links: checked, then renamed (the check and the rename are
        // not one step there).
        if (typeof code !== 'string' || !NO_LINKS.has(code)) throw e;
        refuseExisting([path], false);
        renameSync(tmp, path);
      }
    }
  } finally {
    // After a rename there is nothing left at tmp; after a link, the second name goes.
    rmSync(tmp, { force: true });
  }
}

/** The folder a file is to be written in exists (else one clear error, not the temporary file's). */
function folderExists(path: string): void {
  const dir = dirname(path);
  const st = statSync(dir, { throwIfNoEntry: false });
  if (st === undefined)
    throw new ClientError(
      'INVALID_ARGUMENT',
      `the folder ${dir} does not exist: create it first, or choose another --out`,
    );
  if (!st.isDirectory())
    throw new ClientError('INVALID_ARGUMENT', `${dir} is not a folder: choose another --out`);
}
