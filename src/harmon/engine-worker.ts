/**
 * Worker-thread host of the Harmon pipelines. `session.run` blocks its thread for the whole
 * inference, so all of it happens here, off the caller's event loop. Loads the model once, then
 * runs one request — or one batch of generate requests sharing a MAR loop — at a time
 * (HarmonEngine serialises them) and posts events, results and
 * coded errors back.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { isAppError } from '../shared/errors.ts';
import { describe } from './describe.ts';
import type { FromWorker, GenerateMsg, ToWorker, WireError, WorkerInit } from './engine-protocol.ts';
import type { CancelSignal, GenerateResult, PipelineEvent, StepDebugInfo } from './events.ts';
import { generate, generateBatch } from './generate.ts';
import { HarmonModel } from './harmon-model.ts';

const port = parentPort;
if (!port) throw new Error('engine-worker.ts must run as a worker thread');
const init = workerData as WorkerInit;

function post(msg: FromWorker, transfer: ArrayBuffer[] = []): void {
  port?.postMessage(msg, transfer);
}

function toWire(e: unknown): WireError {
  if (isAppError(e)) return { code: e.code, message: e.message, details: e.details };
  return { code: 'INTERNAL', message: e instanceof Error ? e.message : String(e) };
}

function sharedSignal(sab: SharedArrayBuffer): CancelSignal {
  const flag = new Int32Array(sab);
  return {
    get aborted() {
      return Atomics.load(flag, 0) === 1;
    },
  };
}

let model: HarmonModel;
try {
  model = await HarmonModel.open(init.modelDir, init.runtime);
} catch (e) {
  post({ kind: 'load-error', error: toWire(e) });
  // Exit instead of throwing: a thrown error reaches the parent as an 'error' event that can
  // overtake the message above and replace its precise code (MODEL_INVALID) with a generic one.
  process.exit(1);
}
const m = model.manifest;
post({
  kind: 'ready',
  info: {
    dir: init.modelDir,
    modelId: m.modelId,
    variant: m.variant,
    demo: m.demo,
    maxImageSize: m.config.maxImageSize,
    executionProvider: model.runtime.executionProvider,
    load: model.runtime.loadStats,
  },
});

/** Run options of one request: its events and debug facts tagged with its id, its own cancel flag. */
function runOptions(msg: GenerateMsg) {
  const { id } = msg;
  return {
    onEvent: (event: PipelineEvent) => post({ kind: 'event', id, event }),
    signal: sharedSignal(msg.cancel),
    previewEvery: msg.previewEvery,
    returnLatents: msg.returnLatents,
    onStepDebug: msg.debug ? (info: StepDebugInfo) => post({ kind: 'debug', id, info }) : undefined,
  };
}

function postResult(id: number, result: GenerateResult): void {
  post({ kind: 'result', id, result }, [...result.images.map((i) => i.data.buffer as ArrayBuffer)]);
}

port.on('message', async (msg: ToWorker) => {
  if (msg.kind === 'close') {
    await model.close();
    post({ kind: 'closed' });
    port.close();
    return;
  }
  if (msg.kind === 'generate-batch') {
    const settled = await generateBatch(
      model,
      msg.items.map((item) => ({ input: item.input, run: runOptions(item) })),
    ).catch((e: unknown) =>
      msg.items.map((): PromiseSettledResult<GenerateResult> => ({ status: 'rejected', reason: e })),
    );
    settled.forEach((r, i) => {
      const { id } = msg.items[i];
      if (r.status === 'fulfilled') postResult(id, r.value);
      else post({ kind: 'error', id, error: toWire(r.reason) });
    });
    return;
  }
  const { id } = msg;
  try {
    if (msg.kind === 'generate') {
      postResult(id, await generate(model, msg.input, runOptions(msg)));
    } else {
      const signal = sharedSignal(msg.cancel);
      const onEvent = (event: PipelineEvent) => post({ kind: 'event', id, event });
      const result = await describe(model, msg.image, msg.input, { onEvent, signal });
      post({ kind: 'result', id, result });
    }
  } catch (e) {
    post({ kind: 'error', id, error: toWire(e) });
  }
});
