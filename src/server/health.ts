/**
 * GET /healthz: 200 when the database and object storage answer, 503 naming the failing part.
 * Each probe is bounded so a hung dependency turns into a 503 instead of a hung health check.
 */
import type { RouteHandler } from './app.ts';
import { sendJson } from './app.ts';

export type HealthProbe = () => Promise<void>;
const PROBE_TIMEOUT_MS = 3000;

async function probe(fn: HealthProbe): Promise<string> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      fn(),
      new Promise((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`timed out after ${PROBE_TIMEOUT_MS} ms`)),
          PROBE_TIMEOUT_MS,
        );
      }),
    ]);
    return 'ok';
  } catch (e) {
    return `error: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}`;
  } finally {
    clearTimeout(timer);
  }
}

export function healthHandler(
  probes: { database: HealthProbe; storage: HealthProbe },
  version: string,
): RouteHandler {
  return async (req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD')
      return sendJson(res, 405, { error: { code: 'BAD_USER_INPUT', message: 'use GET' } });
    const [database, storage] = await Promise.all([probe(probes.database), probe(probes.storage)]);
    const ok = database === 'ok' && storage === 'ok';
    sendJson(res, ok ? 200 : 503, { status: ok ? 'ok' : 'degraded', database, storage, version });
  };
}
