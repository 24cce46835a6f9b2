/**
 * The `harmon` command. Each subcommand lives in its own file under ./commands and is registered
 * here; this file only wires them and turns thrown AppErrors into a one-line message + exit code.
 */
import { Command } from 'commander';
import { exitCodeFor, isAppError } from '../shared/errors.ts';
import { registerCommands } from './commands/index.ts';

const program = new Command('harmon').description('Harmon serving platform').showHelpAfterError();
registerCommands(program);

try {
  await program.parseAsync(process.argv);
} catch (e) {
  const msg = isAppError(e) ? `${e.code}: ${e.message}` : e instanceof Error ? e.message : String(e);
  process.stderr.write(`harmon: ${msg}\n`);
  process.exit(exitCodeFor(e));
}
