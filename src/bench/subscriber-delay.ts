/**
 * The delay from an event's commit to its arrival at many graphql-ws `jobEvents` subscribers of
 * one job (1,000 in the bench), multiplexed over connections of 10 subscriptions each.
 */
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { appendEvent } from '../jobs/event-log.ts';
import type { Prisma } from '../storage/db.ts';

export type SubscriberDelayOptions = {
  serverUrl: string;
  prisma: Prisma;
  apiKey: string;
  tenantId: string;
  jobId: string;
  subscribers: number;
  /** Events published, one at a time. */
  events: number;
};

async function waitFor(cond: () => boolean, what: string, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Milliseconds from each commit to each subscriber's receipt (events × subscribers samples). */
export async function measureSubscriberDelays(o: SubscriberDelayOptions): Promise<number[]> {
  const perConn = 10;
  const clients = Array.from({ length: Math.ceil(o.subscribers / perConn) }, () =>
    createClient({
      url: `${o.serverUrl.replace('http', 'ws')}/graphql`,
      webSocketImpl: WebSocket,
      connectionParams: { authorization: `Bearer ${o.apiKey}` },
      retryAttempts: 0,
    }),
  );
  const received = new Map<number, number[]>(); // seq -> arrival times
  let ready = 0;
  const unsubs: (() => void)[] = [];
  try {
    for (let i = 0; i < o.subscribers; i++) {
      const c = clients[Math.floor(i / perConn)];
      unsubs.push(
        c.subscribe<{ jobEvents: { seq: number } }>(
          { query: `subscription { jobEvents(jobId: "${o.jobId}") { seq type } }` },
          {
            next: (r) => {
              const seq = r.data?.jobEvents.seq;
              if (seq === undefined) return;
              if (seq === 1) ready++;
              else received.set(seq, [...(received.get(seq) ?? []), performance.now()]);
            },
            error: () => {},
            complete: () => {},
          },
        ),
      );
    }
    await waitFor(() => ready >= o.subscribers, `${o.subscribers} subscribers to replay seq 1`);
    const delays: number[] = [];
    for (let k = 0; k < o.events; k++) {
      const t0 = performance.now();
      const ev = await o.prisma.$transaction((tx) =>
        appendEvent(tx, {
          jobId: o.jobId,
          tenantId: o.tenantId,
          type: 'PROGRESS',
          status: 'QUEUED',
          payload: { step: k + 1, totalSteps: o.events },
        }),
      );
      await waitFor(
        () => (received.get(ev.seq)?.length ?? 0) >= o.subscribers,
        `event ${ev.seq} at every subscriber`,
      );
      for (const t of received.get(ev.seq) ?? []) delays.push(t - t0);
    }
    return delays;
  } finally {
    for (const u of unsubs) u();
    await Promise.all(clients.map((c) => c.dispose()));
  }
}
