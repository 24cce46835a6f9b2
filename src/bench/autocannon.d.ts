// autocannon ships no types; only the part the API benchmark uses is declared.
declare module 'autocannon' {
  import type { EventEmitter } from 'node:events';
  export type Client = { setHeaders(headers: Record<string, string>): void };
  export type AutocannonOptions = {
    url: string;
    method?: string;
    headers?: Record<string, string>;
    body?: string;
    connections?: number;
    duration?: number;
    amount?: number;
    timeout?: number;
    /** Called once per connection before its first request (e.g. per-connection headers). */
    setupClient?: (client: Client) => void;
  };
  export type Histogram = { average: number; p50: number; p90: number; p99: number; max: number };
  export type AutocannonResult = {
    latency: Histogram;
    requests: Histogram & { total: number };
    errors: number;
    timeouts: number;
    non2xx: number;
    '2xx': number;
    /** Seconds. */
    duration: number;
  };
  /** A running load test: an EventEmitter that is also a promise of its result. */
  export type Instance = Omit<EventEmitter, 'on'> &
    PromiseLike<AutocannonResult> & {
      on(
        event: 'response',
        listener: (client: Client, statusCode: number, resBytes: number, responseTimeMs: number) => void,
      ): Instance;
    };
  export default function autocannon(options: AutocannonOptions): Instance;
}
