// gen train's progress display on a terminal (cli-progress, on stderr): epochs
// done, ETA, images per second and the last epoch's loss. Lines printed on
// stdout meanwhile appear above it.
import cliProgress from 'cli-progress';
import type { EpochStats } from '../train/loop.js';

export interface Progress {
  epoch(epoch: number, loss: number, stats: EpochStats): void;
  /** prints a stdout line without tearing the bar */
  line(text: string): void;
  stop(): void;
}

export function trainingProgress(total: number, done = 0): Progress {
  const bar = new cliProgress.SingleBar(
    {
      stream: process.stderr,
      format: 'epoch {value}/{total} [{bar}] ETA {eta_formatted} | {ips} img/s | loss {loss}',
      barsize: 24,
      hideCursor: true,
      clearOnComplete: true,
      etaBuffer: 8,
    },
    cliProgress.Presets.legacy,
  );
  bar.start(total, done, { ips: '-', loss: '-' });
  return {
    epoch(epoch, loss, s) {
      bar.update(epoch, { ips: Math.round(s.images / s.seconds), loss: loss.toFixed(4) });
    },
    line(text) {
      process.stderr.write('\r\x1b[K');
      process.stdout.write(text + '\n');
      // the bar restores the cursor it saved when it stops: save it again on the bar's new line
      process.stderr.write('\x1b7');
      bar.render();
    },
    stop() {
      bar.stop();
    },
  };
}
