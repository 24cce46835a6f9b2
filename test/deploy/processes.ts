/**
 * Child processes for the deployment simulation: `harmon serve --no-worker` and `harmon worker`
 * as real processes, each awaited until it prints its ready line (bounded), and which worker
 * process holds a job's Postgres advisory lock (src/jobs/job-locks.ts): the one running it.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import pg from 'pg';

export type Harmon = { child: ChildProcess; pid: number; output(): string };

/** Spawns `harmon <args>` and resolves with the first match of `ready` in its stdout. */
export async function startHarmon(
  args: string[],
  env: NodeJS.ProcessEnv,
  ready: RegExp,
  timeoutMs: number,
  nodeArgs: string[] = [],
): Promise<Harmon & { match: RegExpExecArray }> {
  const child = spawn(process.execPath, ['--import', 'tsx', ...nodeArgs, 'src/cli/main.ts', ...args], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stderr?.on('data', (d) => (out += d));
  const match = await new Promise<RegExpExecArray>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`harmon ${args[0]} not ready in ${timeoutMs} ms: ${out.slice(-2000)}`));
    }, timeoutMs);
    child.stdout?.on('data', (d) => {
      out += d;
      const m = ready.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m);
      }
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`harmon ${args[0]} exited (${code ?? signal}): ${out.slice(-2000)}`));
    });
  });
  return { child, pid: child.pid as number, match, output: () => out };
}

export const exited = (child: ChildProcess): Promise<{ code: number | null; signal: string | null }> =>
  new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null)
      resolve({ code: child.exitCode, signal: child.signalCode });
    else child.once('exit', (code, signal) => resolve({ code, signal }));
  });

/** Test cleanup: every child still alive is woken (a SIGSTOP'd one too) and killed; resolves once all exited. */
export async function killAll(children: Harmon[]): Promise<void> {
  for (const { child } of children) {
    if (child.exitCode !== null || child.signalCode !== null) continue;
    child.kill('SIGCONT');
    child.kill('SIGKILL');
  }
  await Promise.all(children.map((w) => exited(w.child)));
}

/**
 * Client ports of the Postgres sessions holding the job's lock: pg_try_advisory_lock(bigint)
 * shows up in pg_locks split into classid (high 32 bits) and objid (low 32 bits).
 */
async function lockHolderPorts(databaseUrl: string, jobId: string): Promise<number[]> {
  const c = new pg.Client({ connectionString: databaseUrl });
  await c.connect();
  try {
    const r = await c.query<{ port: number }>(
      `WITH k AS (SELECT hashtextextended($1, 7) AS h)
       SELECT a.client_port AS port FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid, k
       WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
         AND l.classid::bigint = ((k.h >> 32) & 4294967295) AND l.objid::bigint = (k.h & 4294967295)`,
      [`harmon-job:${jobId}`],
    );
    return r.rows.map((row) => row.port);
  } finally {
    await c.end();
  }
}

/** Socket inodes of local TCP endpoints on `port` (Linux /proc; IPv4 and IPv6 tables). */
function socketInodes(port: number): Set<string> {
  const inodes = new Set<string>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      // cols: sl, local "ADDR:PORT" (hex), remote, state, ..., inode at index 9
      if (cols.length > 9 && Number.parseInt(cols[1].split(':').at(-1) ?? '', 16) === port)
        inodes.add(cols[9]);
    }
  }
  return inodes;
}

/** Which of `pids` holds the job's lock (i.e. runs the job), or undefined when none does yet. */
export async function pidRunningJob(
  databaseUrl: string,
  jobId: string,
  pids: number[],
): Promise<number | undefined> {
  for (const port of await lockHolderPorts(databaseUrl, jobId)) {
    const inodes = socketInodes(port);
    for (const pid of pids) {
      let fds: string[] = [];
      try {
        fds = readdirSync(`/proc/${pid}/fd`);
      } catch {
        continue; // exited
      }
      for (const fd of fds) {
        let target = '';
        try {
          target = readlinkSync(`/proc/${pid}/fd/${fd}`);
        } catch {
          continue;
        }
        const m = /^socket:\[(\d+)\]$/.exec(target);
        if (m && inodes.has(m[1])) return pid;
      }
    }
  }
  return undefined;
}
