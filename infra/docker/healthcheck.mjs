// Container health check for both images: healthy when the process answers GET /healthz on PORT.
// Plain .mjs (no tsx) so it costs one bare node start every 30 s.
const port = process.env.PORT ?? '4000';
try {
  const res = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(4000) });
  process.exit(res.ok ? 0 : 1);
} catch {
  process.exit(1);
}
