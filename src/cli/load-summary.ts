/**
 * One log record per loaded model: what the cold start cost and where it went (file checks,
 * then each graph's session creation), so a slow scale-from-zero can be read off the logs.
 */
import type { ModelInfo } from '../harmon/engine.ts';

export function loadSummary(info: ModelInfo): Record<string, unknown> {
  const { load } = info;
  const count = (how: string) => load.files.filter((f) => f.how === how).length;
  return {
    model: info.modelId,
    executionProvider: info.executionProvider,
    loadMs: Math.round(load.totalMs),
    verifyMs: Math.round(load.verifyMs),
    filesHashed: count('hashed'),
    filesTrustedByMarker: count('marker'),
    msByGraph: Object.fromEntries(Object.entries(load.msByGraph).map(([g, ms]) => [g, Math.round(ms)])),
  };
}
