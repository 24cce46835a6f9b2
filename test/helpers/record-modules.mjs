/**
 * `node --import tsx --import ./test/helpers/record-modules.mjs ...` with HARMON_RECORD_MODULES=FILE
 * appends every module the process resolves (one per line) to FILE: ESM imports through a resolve
 * hook, CommonJS require() through Module._resolveFilename (on Node 20 require() inside CommonJS
 * code does not pass the ESM hooks). Lets a test prove which packages a command really loads.
 */
import { appendFileSync } from 'node:fs';
import { createRequire, register } from 'node:module';

const out = process.env.HARMON_RECORD_MODULES;
if (out) {
  register(new URL('./record-modules-hooks.mjs', import.meta.url), { data: { out } });
  const Module = createRequire(import.meta.url)('node:module');
  const resolveFilename = Module._resolveFilename;
  Module._resolveFilename = function (...args) {
    const file = resolveFilename.apply(this, args);
    appendFileSync(out, `${file}\n`);
    return file;
  };
}
