// Lambda handler module for the optional GraphQL Lambda: the Node runtime only loads .js/.mjs,
// so this registers tsx and re-exports the handler from the TypeScript sources.
import { register } from 'tsx/esm/api';

register();
const mod = await import('./src/lambda.ts');
export const handler = mod.handler;
