/** A progress bar on stderr (stdout stays clean for machine-readable output). */
import cliProgress from 'cli-progress';

export interface ProgressBar {
  update(done: number, total: number, label: string): void;
  stop(): void;
}

export function progressBar(title: string): ProgressBar {
  // Without a TTY (CI, pipes) a redrawn bar is noise: print one line per update instead.
  if (!process.stderr.isTTY) {
    return {
      update: (done, total, label) => process.stderr.write(`${title} ${done}/${total} ${label}\n`),
      stop: () => {},
    };
  }
  const bar = new cliProgress.SingleBar(
    { format: `${title} [{bar}] {value}/{total} {label}`, stream: process.stderr, hideCursor: true },
    cliProgress.Presets.shades_classic,
  );
  let started = false;
  return {
    update(done, total, label) {
      if (!started) {
        bar.start(total, 0, { label: '' });
        started = true;
      }
      bar.setTotal(total);
      bar.update(done, { label });
    },
    stop: () => started && bar.stop(),
  };
}
