/** `backchannel relay` (runs the relay process) and `backchannel demo`. */
import { spawn } from 'node:child_process';
import type { Command } from 'commander';
import { ClientError } from '../../sdk/errors.ts';
import { runDemo } from '../demo.node.ts';
import { relayEntry, tsxImport } from '../relay-process.node.ts';
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
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--data <dir>', 'data directory (env BACKCHANNEL_DATA)', process.env.BACKCHANNEL_DATA ?? './data')
    .option('--store <url>', 'storage: sqlite (default) or postgres://… (env BACKCHANNEL_STORE)')
    .option('--fanout <url>', 'fan-out between relay nodes: nats://… (env BACKCHANNEL_FANOUT)')
    .option(
      '--checkpoint-key <file>',
      'the checkpoint signing key (env BACKCHANNEL_CHECKPOINT_KEY_FILE; default <data>/checkpoint-key, made on first start)',
    )
    .option(
      '--previous-checkpoint-key <file>',
      'during a key rotation: the retiring key; devices and witnesses move to the new one (docs/OPERATIONS.md)',
    )
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
            previousCheckpointKey?: string;
          },
        ) => {
          const port = Number(opts.port);
          if (!/^\d+$/.test(opts.port) || port > 65535)
            throw new ClientError(
              'INVALID_ARGUMENT',
              `--port is a port number, 0 to 65535 (not ${opts.port})`,
            );
          const child = spawn(process.execPath, ['--import', tsxImport(), relayEntry()], {
            stdio: 'inherit',
            env: {
              ...process.env,
              PORT: opts.port,
              HOST: opts.host,
              BACKCHANNEL_DATA: opts.data,
              ...(opts.store === undefined ? {} : { BACKCHANNEL_STORE: opts.store }),
              ...(opts.fanout === undefined ? {} : { BACKCHANNEL_FANOUT: opts.fanout }),
              ...(opts.checkpointKey === undefined
                ? {}
                : { BACKCHANNEL_CHECKPOINT_KEY_FILE: opts.checkpointKey }),
              ...(opts.previousCheckpointKey === undefined
                ? {}
                : { BACKCHANNEL_PREVIOUS_CHECKPOINT_KEY_FILE: opts.previousCheckpointKey }),
            },
          });
          for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => child.kill(sig));
          await new Promise<void>((resolve) => {
            child.on('exit', (code) => {
              process.exitCode = code ?? 0;
              resolve();
            });
          });
        },
      ),
    );

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
    .action(
      run(async (o, out, opts: { out?: string; port: string }) => {
        await runDemo({ out, json: o.json === true, outDir: opts.out, port: Number(opts.port) });
      }),
    );
}
