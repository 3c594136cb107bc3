/** `backchannel` — the command-line client (the command tree is in program.ts). */
import { EXIT } from './output.ts';
import { buildProgram } from './program.ts';

// Parsed before commander runs: a usage error under --json must be JSON too.
const end = process.argv.indexOf('--');
const json = process.argv.slice(2, end === -1 ? undefined : end).includes('--json');
const program = buildProgram({ json });
program.exitOverride((err) => {
  process.exit(err.exitCode === 0 ? EXIT.ok : EXIT.usage);
});

await program.parseAsync(process.argv);
