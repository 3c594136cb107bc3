/** `backchannel relay` (runs the relay process) and `backchannel demo`. */
import { execFile, spawn } from 'node:child_process';
import type { Command } from 'commander';
import { ClientError } from '../../sdk/errors.ts';
import { runDemo } from '../demo.node.ts';
import { backupEntry, ensureFree, relayEntry, relayStartFailure, tsxImport } from '../relay-process.node.ts';
import type { Runner } from './identity.ts';
import { examples } from '../output.ts';

/** Path of the relay's entry point (run as its own process: the client never imports the server). */
export function relayCommands(program: Command, run: Runner): void {
  program
    .command('relay')
    .description(
      'run a relay (HTTP + WebSocket): embedded SQLite, or one node of a PostgreSQL + NATS cluster',
    )
    .option('--port <port>', 'port (env PORT)', process.env.PORT ?? '8787')
    .option('--host <host>', 'address to listen on (env HOST)', process.env.HOST ?? '127.0.0.1')
    .option('--data <dir>', 'data directory (env BACKCHANNEL_DATA)', process.env.BACKCHANNEL_DATA ?? './data')
    .option('--store <url>', 'storage: sqlite (default) or postgres://… (env BACKCHANNEL_STORE)')
    .option('--fanout <url>', 'fan-out between relay nodes: nats://… (env BACKCHANNEL_FANOUT)')
    .option(
      '--checkpoint-key <file>',
      'the checkpoint signing key (env BACKCHANNEL_CHECKPOINT_KEY_FILE; default <data>/checkpoint-key, made on first start)',
    )
    .option(
      '--previous-checkpoint-key <file>',
      'during a key rotation: a retired key, repeated for each; devices and witnesses move to the new one (docs/OPERATIONS.md)',
      (file: string, files: string[] | undefined) => [...(files ?? []), file],
    )
    .option('--name <name>', "the relay's name, as devices pin it (env BACKCHANNEL_RELAY_NAME)")
    .option(
      '--config <file>',
      'a JSON configuration file (env BACKCHANNEL_CONFIG); the environment and these flags win over it',
    )
    .option('--log-level <level>', 'fatal, error, warn, info (default), debug or trace (env LOG_LEVEL)')
    .option('--web <dir>', "serve the web app's build from this folder (env BACKCHANNEL_WEB_DIST)")
    .addHelpText(
      'after',
      '\nExamples:\n  backchannel relay --port 8787 --data ./data\n  backchannel relay --data ./node1 --store postgres://relay@db:5432/backchannel --fanout nats://mq:4222\n  backchannel relay --data ./data --previous-checkpoint-key ./data/checkpoint-key.old',
    )
    .action(
      run(
        async (
          _o,
          _out,
          opts: {
            port: string;
            host: string;
            data: string;
            store?: string;
            fanout?: string;
            checkpointKey?: string;
            previousCheckpointKey?: string[];
            name?: string;
            config?: string;
            logLevel?: string;
            web?: string;
          },
        ) => {
          const port = Number(opts.port);
          if (!/^\d+$/.test(opts.port) || port > 65535)
            throw new ClientError(
              'INVALID_ARGUMENT',
              `--port is a port number, 0 to 65535 (not ${opts.port})`,
            );
          // A port in use is said before anything starts, as `demo` says it.
          // The relay's port defaults to 8787 (not a free one, as the demo's does).
          if (port !== 0)
            await ensureFree(port, opts.host, 'choose another with --port (--port 0 picks a free one)');
          // The relay takes these flags itself (flags > environment > config file).
          // `--flag=value`: a value that starts with '-' is not taken for another flag.
          const given = (flag: string, value: string | undefined) =>
            value === undefined ? [] : [`${flag}=${value}`];
          const args = [
            ...given('--port', opts.port),
            ...given('--host', opts.host),
            ...given('--data', opts.data),
            ...given('--store', opts.store),
            ...given('--fanout', opts.fanout),
            ...given('--checkpoint-key', opts.checkpointKey),
            ...(opts.previousCheckpointKey ?? []).flatMap((f) => given('--previous-checkpoint-key', f)),
            ...given('--name', opts.name),
            ...given('--config', opts.config),
            ...given('--log-level', opts.logLevel),
            ...given('--web', opts.web),
          ];
          const child = spawn(process.execPath, ['--import', tsxImport(), relayEntry(), ...args], {
            // stderr through this process: a relay that cannot start is reported as every error is.
            stdio: ['inherit', 'inherit', 'pipe'],
            // A process group of its own: Ctrl-C reaches this process only, which passes it on once
            // (the terminal's and ours made two, and a second signal cuts the relay's drain short).
            detached: true,
          });
          let stopping = false;
          // The terminal closing (SIGHUP) no longer reaches the relay's group: it stops it as SIGTERM.
          for (const [sig, as] of [
            ['SIGINT', 'SIGINT'],
            ['SIGTERM', 'SIGTERM'],
            ['SIGHUP', 'SIGTERM'],
          ] as const)
            process.on(sig, () => {
              if (stopping) return;
              stopping = true;
              child.kill(as);
            });
          const stderr = new HeldUntilReady();
          child.stderr?.on('data', (d: Buffer) => stderr.write(d));
          // 'close': the process has exited and its stderr is drained (the relay's last line is in).
          let gone = false;
          const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
            child.on('close', (code, signal) => {
              gone = true;
              resolve({ code, signal });
            }),
          );
          const ready = await Promise.race([
            whenReady(readyUrl(opts.host, port), () => gone),
            exit.then(() => false),
          ]);
          if (ready) stderr.release();
          const { code, signal } = await exit;
          // Stopped while it started (Ctrl-C) is no failure.
          if (!ready && code !== 0 && !stopping) {
            const said = stderr.held;
            if (process.env.BACKCHANNEL_DEBUG === '1') stderr.release();
            throw relayStartFailure(code, signal, said);
          }
          stderr.release();
          process.exitCode = code ?? 0;
        },
      ),
    );

  relayBackupCommands(program, run);

  program
    .command('demo')
    .description(
      'play the reference scenario (steps 1–9) against a local relay it starts, narrating each step',
    )
    .addHelpText('after', examples('backchannel demo', 'backchannel demo --out ./demo-files'))
    .option(
      '--out <dir>',
      'also write each party exported transcript and the joint statement export bundle there',
    )
    .option('--port <port>', 'port for the demo relay', '0')
    .option('--force', 'replace the files of an earlier run in --out')
    .action(
      run(async (o, out, opts: { out?: string; port: string; force?: boolean }) => {
        await runDemo({
          out,
          json: o.json === true,
          outDir: opts.out,
          force: opts.force === true,
          port: Number(opts.port),
        });
      }),
    );
}

/**
 * The relay's stderr, kept while it starts (a failure to start becomes one typed error), then
 * passed through as it comes.
 */
class HeldUntilReady {
  #held: Buffer[] = [];
  #released = false;

  get held(): string {
    return Buffer.concat(this.#held).toString('utf8');
  }

  write(d: Buffer): void {
    if (this.#released) process.stderr.write(d);
    else this.#held.push(d);
  }

  release(): void {
    if (this.#released) return;
    this.#released = true;
    for (const d of this.#held) process.stderr.write(d);
    this.#held = [];
  }
}

/** Where this machine reaches a relay listening on `host` (a wildcard address: loopback). */
function readyUrl(host: string, port: number): string | undefined {
  if (port === 0) return undefined; // the relay picks its port: nothing to ask
  const h = host === '' || host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host;
  return `http://${h.includes(':') ? `[${h}]` : h}:${port}/readyz`;
}

/**
 * True once the relay answers /readyz, or after `patienceMs` at the latest (a relay on port 0, or
 * one slow to reach its store: its stderr is then passed through, as before it was held); false
 * when it is `gone` first.
 */
async function whenReady(
  url: string | undefined,
  gone: () => boolean,
  patienceMs = 30_000,
): Promise<boolean> {
  const until = Date.now() + patienceMs;
  while (Date.now() < until) {
    if (gone()) return false;
    if (url !== undefined) {
      try {
        const r = await fetch(url, { signal: AbortSignal.timeout(1_000) });
        if (r.ok) return true;
      } catch {
        // not listening yet
      }
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return !gone();
}

/** What `relay-backup` and `relay-restore` print: the backup's manifest (backup.json). */
interface BackupManifest {
  readonly format: string;
  readonly createdAt: number;
  readonly channels: number;
  readonly entries: number;
  readonly files: Readonly<Record<string, { bytes: number; sha256: string }>>;
}

/** `relay-backup` and `relay-restore`: the relay's own entry does the work, in a child process. */
function relayBackupCommands(program: Command, run: Runner): void {
  program
    .command('relay-backup')
    .description(
      "back up an embedded relay's data folder while it runs: a consistent snapshot of its database and its checkpoint key, in a new folder (0700)",
    )
    .requiredOption('--out <dir>', 'the backup folder to create (new, or empty)')
    .option(
      '--data <dir>',
      'the relay data directory (env BACKCHANNEL_DATA)',
      process.env.BACKCHANNEL_DATA ?? './data',
    )
    .option('--checkpoint-key <file>', 'the checkpoint key, when not <data>/checkpoint-key')
    .addHelpText(
      'after',
      `${examples('backchannel relay-backup --data ./data --out ./backups/relay-2026-12-07')}\nA relay on PostgreSQL is backed up with pg_dump (docs/OPERATIONS.md).`,
    )
    .action(
      run(async (_o, out, opts: { out: string; data: string; checkpointKey?: string }) => {
        const m = await runBackupEntry(
          ['backup', '--data', opts.data, '--out', opts.out],
          opts.checkpointKey,
        );
        out.result(
          { out: opts.out, ...m },
          (v: BackupManifest & { out: string }) =>
            `backed up ${v.channels} channel(s), ${v.entries} entries, as of ${new Date(v.createdAt).toISOString()}, to ${v.out}\n` +
            'it holds the checkpoint key: keep it as secret as the relay itself',
        );
      }),
    );

  program
    .command('relay-restore')
    .description(
      'restore a relay backup into a data folder: checks the backup first; no relay may run on the folder, and it may hold no database yet',
    )
    .requiredOption('--from <dir>', 'the backup folder (written by relay-backup)')
    .option(
      '--data <dir>',
      'the relay data directory (env BACKCHANNEL_DATA)',
      process.env.BACKCHANNEL_DATA ?? './data',
    )
    .option(
      '--checkpoint-key <file>',
      'where the relay reads its checkpoint key, when not <data>/checkpoint-key',
    )
    .addHelpText(
      'after',
      `${examples('backchannel relay-restore --from ./backups/relay-2026-12-07 --data ./data')}\nThen start the relay on the folder. Devices check the restored log against every checkpoint they hold: entries acknowledged after the backup are missing from it, and devices that saw them report FORK_DETECTED (docs/OPERATIONS.md).`,
    )
    .action(
      run(async (_o, out, opts: { from: string; data: string; checkpointKey?: string }) => {
        const m = await runBackupEntry(
          ['restore', '--from', opts.from, '--data', opts.data],
          opts.checkpointKey,
        );
        out.result(
          { data: opts.data, ...m },
          (v: BackupManifest & { data: string }) =>
            `restored ${v.channels} channel(s), ${v.entries} entries, as of ${new Date(v.createdAt).toISOString()}, into ${v.data}; start the relay on it`,
        );
      }),
    );
}

/** Runs the relay's backup entry; its `error CODE: message` line becomes the typed error. */
async function runBackupEntry(
  verbAndFolders: readonly string[],
  checkpointKey: string | undefined,
): Promise<BackupManifest> {
  const args = [
    ...verbAndFolders,
    ...(checkpointKey === undefined ? [] : ['--checkpoint-key', checkpointKey]),
  ];
  const { code, stdout, stderr } = await new Promise<{ code: number; stdout: string; stderr: string }>(
    (resolve) => {
      execFile(
        process.execPath,
        ['--import', tsxImport(), backupEntry(), ...args],
        { maxBuffer: 1 << 20 },
        (err, stdout, stderr) => {
          const c = err === null ? 0 : typeof err.code === 'number' ? err.code : 2;
          resolve({ code: c, stdout, stderr });
        },
      );
    },
  );
  if (code === 0) return JSON.parse(stdout.trim().split('\n').at(-1) as string) as BackupManifest;
  const line = stderr
    .split('\n')
    .map((l) => l.trim())
    .findLast((l) => l.startsWith('error '));
  const m = line === undefined ? null : /^error ([A-Z_]+): (.*)$/.exec(line);
  if (m !== null) {
    const c = m[1] as string;
    const message = m[2] as string;
    if (c === 'INVALID_ARGUMENT' || c === 'BACKUP_INVALID') throw new ClientError(c, message);
    throw new ClientError('RELAY_ERROR', message);
  }
  throw new ClientError('RELAY_ERROR', `the relay's backup tool failed (exit ${code})`);
}
