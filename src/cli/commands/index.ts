import type { Command } from 'commander';

/** One line per subcommand module; each module exports `register(program)`. */
export function registerCommands(_program: Command): void {}
