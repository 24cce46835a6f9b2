import type { Command } from 'commander';
import { register as registerBench } from './bench.ts';
import { register as registerDb } from './db.ts';
import { register as registerDescribe } from './describe.ts';
import { register as registerGenerate } from './generate.ts';
import { register as registerKeys } from './keys.ts';
import { register as registerModel } from './model.ts';
import { register as registerServe } from './serve.ts';
import { register as registerTenants } from './tenants.ts';
import { register as registerWorker } from './worker.ts';

/** One line per subcommand module; each module exports `register(program)`. */
export function registerCommands(program: Command): void {
  registerServe(program);
  registerKeys(program);
  registerTenants(program);
  registerDb(program);
  registerGenerate(program);
  registerDescribe(program);
  registerModel(program);
  registerWorker(program);
  registerBench(program);
}
