/**
 * The queue port's contract, run against every implementation (postgres.test.ts, sqs.test.ts)
 * on a real backend. Timeouts are short (1-2 s leases) so the suite stays fast; `slackMs` is how
 * much later than the visibility timeout a backend may notice an expired lease.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { QueueBackendOptions } from '../../../src/jobs/queue/create-queue.ts';
import type { Delivery, HandlerContext, JobQueue, QueuePolicy } from '../../../src/jobs/queue/port.ts';

export interface TestPayload {
  n: number;
}

export interface QueueHarness {
  /** A fresh, empty queue with this policy, plus the options that rebuild it in a child process. */
  create(
    policy: Partial<QueuePolicy>,
  ): Promise<{ queue: JobQueue<TestPayload>; options: QueueBackendOptions }>;
  /** Extra time past the visibility timeout before an expired lease is re-delivered. */
  slackMs: number;
}

const HANG_CONSUMER = fileURLToPath(new URL('./fixtures/hang-consumer.ts', import.meta.url));

export function runQueueContract(name: string, harness: QueueHarness): void {
  describe(`queue contract: ${name}`, () => {
    const open: JobQueue<TestPayload>[] = [];
    const make = async (policy: Partial<QueuePolicy>) => {
      const made = await harness.create({ retryDelaySeconds: 0, retryBackoff: false, ...policy });
      open.push(made.queue);
      await made.queue.start();
      return made;
    };
    after(async () => {
      await Promise.all(open.map((q) => q.close()));
    });

    test('delivers every message once with its payload, key and attempt 1; honours delaySeconds', async () => {
      const { queue } = await make({ visibilityTimeoutSeconds: 5 });
      const sentAt = Date.now();
      const ids = [await queue.send({ n: 1 }, { key: 'job-1' }), await queue.send({ n: 2 })];
      await queue.send({ n: 3 }, { key: 'late', delaySeconds: 1 });
      const got: { d: Delivery<TestPayload>; at: number }[] = [];
      const consumer = queue.consume(async (d) => void got.push({ d, at: Date.now() }), { concurrency: 2 });
      await waitFor(() => got.length === 3, 8000, 'three deliveries');
      await consumer.stop();
      const byN = new Map(got.map((g) => [g.d.payload.n, g]));
      assert.deepEqual([...byN.keys()].sort(), [1, 2, 3]);
      assert.equal(byN.get(1)?.d.key, 'job-1');
      assert.equal(byN.get(1)?.d.messageId, ids[0]);
      assert.equal(byN.get(2)?.d.key, ids[1], 'key defaults to the message id');
      assert.ok(got.every((g) => g.d.attempt === 1));
      assert.ok((byN.get(3)?.at ?? 0) - sentAt >= 900, 'delayed message arrived before its delay');
      await waitFor(async () => isEmpty(await queue.stats()), 3000, 'queue drained');
    });

    test('re-delivers after the visibility timeout when the consumer process is SIGKILLed', async () => {
      const { queue, options } = await make({ visibilityTimeoutSeconds: 2, maxAttempts: 3 });
      const id = await queue.send({ n: 7 }, { key: 'crash-me' });
      const child = await leaseInChild(options);
      assert.match(child.line, new RegExp(`^LEASED ${id} 1$`));
      const killedAt = Date.now();
      child.kill();
      const got: Delivery<TestPayload>[] = [];
      const consumer = queue.consume(async (d) => void got.push(d));
      await waitFor(() => got.length === 1, 2000 + harness.slackMs + 4000, 're-delivery');
      await consumer.stop();
      assert.equal(got[0].messageId, id);
      assert.equal(got[0].attempt, 2);
      assert.equal(got[0].key, 'crash-me');
      // The child's automatic heartbeats kept the lease while it lived; it expired only after the kill.
      assert.ok(Date.now() - killedAt >= 1500, 'message came back before the lease could have expired');
      await waitFor(async () => isEmpty(await queue.stats()), 3000, 'acked after re-delivery');
    });

    test('retries a failing handler with a delay between attempts, then succeeds', async () => {
      const { queue } = await make({ visibilityTimeoutSeconds: 5, maxAttempts: 3, retryDelaySeconds: 1 });
      await queue.send({ n: 1 });
      const attempts: { attempt: number; at: number }[] = [];
      const consumer = queue.consume(async (d) => {
        attempts.push({ attempt: d.attempt, at: Date.now() });
        if (d.attempt < 3) throw new Error(`transient ${d.attempt}`);
      });
      await waitFor(() => attempts.length === 3, 12_000, 'three attempts');
      await consumer.stop();
      assert.deepEqual(
        attempts.map((a) => a.attempt),
        [1, 2, 3],
      );
      assert.ok(attempts[1].at - attempts[0].at >= 900, 'first retry came before retryDelaySeconds');
      assert.ok(attempts[2].at - attempts[1].at >= 900, 'second retry came before retryDelaySeconds');
      await waitFor(async () => isEmpty(await queue.stats()), 3000, 'acked on the third attempt');
    });

    test('dead-letters after maxAttempts failures, with payload, key and last error', async () => {
      const { queue } = await make({ visibilityTimeoutSeconds: 5, maxAttempts: 2 });
      await queue.send({ n: 9 }, { key: 'poison' });
      let calls = 0;
      const consumer = queue.consume(async (d) => {
        calls++;
        throw new Error(`boom on attempt ${d.attempt}`);
      });
      await waitFor(async () => (await queue.stats()).deadLettered === 1, 8000, 'dead letter');
      await sleep(1000); // would a third attempt still happen?
      await consumer.stop();
      assert.equal(calls, 2);
      const dead = await queue.listDeadLetters();
      assert.equal(dead.length, 1);
      assert.deepEqual(dead[0].payload, { n: 9 });
      assert.equal(dead[0].key, 'poison');
      assert.match(dead[0].error ?? '', /boom on attempt 2/);
      const stats = await queue.stats();
      assert.equal(stats.waiting + stats.inFlight, 0);

      // Draining: a letter whose handler fails stays; a handled one is removed, exactly once.
      const handled: string[] = [];
      assert.equal(
        await queue.drainDeadLetters(async () => {
          throw new Error('not now');
        }),
        0,
      );
      await waitFor(async () => (await queue.listDeadLetters()).length === 1, 8000, 'letter kept');
      let removed = 0;
      await waitFor(
        async () => {
          removed += await queue.drainDeadLetters(async (d) => void handled.push(d.key));
          return removed === 1;
        },
        8000,
        'letter drained',
      );
      assert.deepEqual(handled, ['poison']);
      assert.deepEqual(await queue.listDeadLetters(), []);
      assert.equal((await queue.stats()).deadLettered, 0);
    });

    test('heartbeats (manual and automatic) keep a long job leased; without them the lease is lost', async () => {
      const { queue } = await make({ visibilityTimeoutSeconds: 1 });
      for (const n of [1, 2, 3]) await queue.send({ n });
      const runs = new Map<number, number>();
      const count = (d: Delivery<TestPayload>) => runs.set(d.payload.n, (runs.get(d.payload.n) ?? 0) + 1);
      const held: boolean[] = [];
      // Manual beats every 300 ms for 3.5 s (3.5 leases).
      const manual = queue.consume(
        async (d, ctx) => {
          count(d);
          for (let t = 0; t < 12; t++) {
            await sleep(300);
            held.push(await ctx.heartbeat());
          }
        },
        { autoHeartbeat: false },
      );
      await waitFor(() => manual.inFlight === 1, 5000, 'manual consumer leased one');
      // Automatic beats only.
      const auto = queue.consume(async (d) => {
        count(d);
        await sleep(3500);
      });
      await waitFor(() => auto.inFlight === 1, 5000, 'auto consumer leased one');
      // No beats: its lease runs out and the message goes to `thief`; a late heartbeat says so.
      let lateBeat: boolean | undefined;
      let abortedByLostLease = false;
      const silent = queue.consume(
        async (d, ctx) => {
          count(d);
          await sleep(1000 + harness.slackMs + 2500);
          lateBeat = await ctx.heartbeat();
          abortedByLostLease = ctx.signal.aborted;
        },
        { autoHeartbeat: false },
      );
      await waitFor(() => silent.inFlight === 1, 5000, 'silent consumer leased one');
      const stolen: Delivery<TestPayload>[] = [];
      const thief = queue.consume(async (d) => {
        count(d);
        stolen.push(d);
      });
      await waitFor(() => lateBeat !== undefined, 1000 + harness.slackMs + 6000, 'silent handler finished');
      await Promise.all([manual.stop(), auto.stop(), silent.stop(), thief.stop()]);
      assert.ok(held.length === 12 && held.every(Boolean), `manual heartbeats failed: ${held}`);
      assert.equal(stolen.length, 1, 'exactly the un-heartbeaten message is re-delivered');
      assert.equal(stolen[0].attempt, 2);
      assert.equal(lateBeat, false, 'heartbeat on a lost lease must report it');
      assert.equal(abortedByLostLease, true, 'a lost lease aborts the handler signal');
      for (const n of [1, 2, 3]) assert.equal(runs.get(n), n === stolen[0].payload.n ? 2 : 1, `runs of ${n}`);
    });

    test('setLease: a short lease lapses soon without beats, automatic beats keep it, no argument restores the full one', async () => {
      // The full lease is long: only a shortened one can lapse within this test.
      const { queue } = await make({ visibilityTimeoutSeconds: 60 });
      for (const n of [1, 2, 3]) await queue.send({ n });
      const holdMs = 1000 + harness.slackMs + 2500;
      const beats: Record<string, boolean | undefined> = {};
      const held = new Map<string, number>();
      const holder =
        (role: string, restore: boolean) => async (d: Delivery<TestPayload>, ctx: HandlerContext) => {
          held.set(role, d.payload.n);
          assert.equal(await ctx.setLease(1), true);
          if (restore) assert.equal(await ctx.setLease(), true);
          await sleep(holdMs);
          beats[role] = await ctx.heartbeat();
        };
      // No beats after setLease(1): its lease ends a second later.
      const dropper = queue.consume(holder('dropper', false), { autoHeartbeat: false });
      await waitFor(() => dropper.inFlight === 1, 5000, 'dropper leased one');
      // Automatic beats renew the short lease every third of it.
      const keeper = queue.consume(holder('keeper', false));
      await waitFor(() => keeper.inFlight === 1, 5000, 'keeper leased one');
      // Shortened, then restored: the full lease, no beats needed within this test.
      const restorer = queue.consume(holder('restorer', true), { autoHeartbeat: false });
      await waitFor(() => restorer.inFlight === 1, 5000, 'restorer leased one');
      const stolen: Delivery<TestPayload>[] = [];
      const thief = queue.consume(async (d) => void stolen.push(d));
      await waitFor(() => Object.keys(beats).length === 3, holdMs + 8000, 'the holders finished');
      await Promise.all([dropper.stop(), keeper.stop(), restorer.stop(), thief.stop()]);
      assert.deepEqual(beats, { dropper: false, keeper: true, restorer: true });
      assert.deepEqual(
        stolen.map((d) => [d.payload.n, d.attempt]),
        [[held.get('dropper'), 2]],
        'only the short lease nobody renewed lapsed, long before the full lease',
      );
    });

    test('idempotent handling: a re-delivered or duplicate message whose job is done is acked unrun', async () => {
      const { queue } = await make({ visibilityTimeoutSeconds: 5, maxAttempts: 3 });
      const done = new Set<string>();
      const runs: Delivery<TestPayload>[] = [];
      const skipped: Delivery<TestPayload>[] = [];
      const consumer = queue.consume(
        async (d) => {
          runs.push(d);
          done.add(d.key); // result stored durably...
          if (d.payload.n === 1) throw new Error('crashed before the ack'); // ...then lost the ack
        },
        {
          isAlreadyDone: async (d) => {
            const yes = done.has(d.key);
            if (yes) skipped.push(d);
            return yes;
          },
        },
      );
      await queue.send({ n: 1 }, { key: 'job-A' });
      await waitFor(() => skipped.length === 1, 6000, 're-delivery of job-A skipped');
      await queue.send({ n: 2 }, { key: 'job-B' });
      await waitFor(() => runs.length === 2, 6000, 'job-B ran');
      await queue.send({ n: 3 }, { key: 'job-B' }); // a duplicate enqueue of a finished job
      await waitFor(() => skipped.length === 2, 6000, 'duplicate of job-B skipped');
      await consumer.stop();
      assert.deepEqual(
        runs.map((d) => d.key),
        ['job-A', 'job-B'],
      );
      assert.deepEqual(
        skipped.map((d) => [d.key, d.attempt]),
        [
          ['job-A', 2],
          ['job-B', 1],
        ],
      );
      await waitFor(async () => isEmpty(await queue.stats()), 3000, 'all acked');
      assert.equal((await queue.stats()).deadLettered, 0);
    });

    test("stop('release') aborts the handler and makes the message visible at once; stop('finish') waits", async () => {
      const { queue } = await make({ visibilityTimeoutSeconds: 30 });
      await queue.send({ n: 1 });
      let sawAbort = false;
      const first = queue.consume(async (_d, ctx) => {
        await sleep(20_000, ctx.signal);
        sawAbort = ctx.signal.aborted;
        ctx.signal.throwIfAborted();
      });
      await waitFor(() => first.inFlight === 1, 5000, 'leased');
      await first.stop({ mode: 'release' });
      assert.equal(sawAbort, true);
      const releasedAt = Date.now();
      let finished: Delivery<TestPayload> | undefined;
      const second = queue.consume(async (d) => {
        await sleep(800);
        finished = d;
      });
      await waitFor(() => second.inFlight === 1, 6000, 'released message re-delivered');
      assert.ok(Date.now() - releasedAt < 6000, 'release must not wait for the 30 s visibility timeout');
      await second.stop({ mode: 'finish', timeoutMs: 5000 });
      assert.equal(finished?.attempt, 2);
      await waitFor(async () => isEmpty(await queue.stats()), 3000, 'finished message acked during stop');
    });
  });
}

function isEmpty(s: { waiting: number; inFlight: number }): boolean {
  return s.waiting === 0 && s.inFlight === 0;
}

/** Starts the fixture consumer in a child process and waits until it holds a message. */
async function leaseInChild(options: QueueBackendOptions): Promise<{ line: string; kill: () => void }> {
  const child = spawn(process.execPath, ['--import', 'tsx', HANG_CONSUMER], {
    env: { ...process.env, QUEUE_OPTIONS: JSON.stringify(options) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout });
  try {
    const line = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('child consumer leased nothing in 15 s')), 15_000);
      lines.once('line', (l) => {
        clearTimeout(timer);
        resolve(l);
      });
      child.once('exit', (code) => reject(new Error(`child consumer exited early with ${code}`)));
    });
    return { line, kill: () => child.kill('SIGKILL') };
  } catch (e) {
    child.kill('SIGKILL');
    throw e;
  }
}

export async function waitFor(
  check: () => boolean | Promise<boolean>,
  timeoutMs: number,
  what: string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`);
    await sleep(50);
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener(
      'abort',
      () => {
        clearTimeout(timer);
        resolve();
      },
      { once: true },
    );
  });
}
