// autocannon ships no types; only the part the API benchmark uses is declared.
declare module 'autocannon' {
  export type AutocannonOptions = {
    url: string;
    method?: string;
    headers?: Record<string, string>;
    body?: string;
    connections?: number;
    duration?: number;
    amount?: number;
    timeout?: number;
  };
  export type Histogram = { average: number; p50: number; p90: number; p99: number; max: number };
  export type AutocannonResult = {
    latency: Histogram;
    requests: Histogram & { total: number };
    errors: number;
    timeouts: number;
    non2xx: number;
    '2xx': number;
    duration: number;
  };
  export default function autocannon(options: AutocannonOptions): Promise<AutocannonResult>;
}
