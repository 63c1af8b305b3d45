// Advisory locks between processes: a lock file created exclusively beside
// what it guards, holding the owner's pid and host. A lock whose owner died on
// this host (kill -9, a crash) is stale and taken over; one held by a live
// process is waited for, up to a deadline, or refused at once. Locks are
// re-entrant within a process (a training run holds its checkpoint's lock and
// each save takes it again).
import fs from 'node:fs';
import os from 'node:os';
import { fsError, pidAlive } from './fs.js';

interface Holder {
  pid: number;
  host: string;
  what: string;
  since: string;
}

export interface LockOptions {
  /** what the holder is doing, shown to a process that finds the lock taken ("gen train --save") */
  what: string;
  /** milliseconds to wait for a live holder; 0 (default) fails at once */
  waitMs?: number;
  /** how the refusal reads, after "<target> is locked by process N (...)" */
  advice?: string;
}

const held = new Map<string, number>();
const sleeper = new Int32Array(new SharedArrayBuffer(4));

function readHolder(lock: string): Holder | undefined {
  try {
    const h = JSON.parse(fs.readFileSync(lock, 'utf8')) as Holder;
    return typeof h.pid === 'number' && typeof h.host === 'string' ? h : undefined;
  } catch {
    return undefined; // being written right now, or already gone
  }
}

function stale(h: Holder | undefined, lock: string): boolean {
  if (h) return h.host === os.hostname() && !pidAlive(h.pid);
  // unreadable: a writer between create and write, or debris; debris once it is a minute old
  try {
    return Date.now() - fs.statSync(lock).mtimeMs > 60_000;
  } catch {
    return false;
  }
}

function tryCreate(lock: string, what: string): boolean {
  let fd: number;
  try {
    fd = fs.openSync(lock, 'wx', 0o644);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw fsError('create the lock file', lock, e);
  }
  try {
    fs.writeSync(fd, JSON.stringify({ pid: process.pid, host: os.hostname(), what, since: new Date().toISOString() }));
  } finally {
    fs.closeSync(fd);
  }
  return true;
}

/** Takes the lock `lock` (a file path) for `target`; returns the release function. */
export function acquireLock(lock: string, target: string, o: LockOptions): () => void {
  const count = held.get(lock);
  if (count !== undefined) {
    held.set(lock, count + 1);
    return once(lock);
  }
  const deadline = Date.now() + (o.waitMs ?? 0);
  for (;;) {
    if (tryCreate(lock, o.what)) break;
    const h = readHolder(lock);
    if (stale(h, lock)) {
      // re-read just before removing, so that a lock taken over meanwhile by a live process stays
      const again = readHolder(lock);
      if (JSON.stringify(again) === JSON.stringify(h)) fs.rmSync(lock, { force: true });
      continue;
    }
    if (Date.now() >= deadline) {
      const who = h ? `process ${h.pid} on ${h.host} (${h.what}, since ${h.since})` : 'another process';
      const waited = o.waitMs ? `; waited ${Math.round(o.waitMs / 1000)} s` : '';
      throw new Error(`${target} is locked by ${who}${waited}${o.advice ? `: ${o.advice}` : ''} (lock file ${lock})`);
    }
    Atomics.wait(sleeper, 0, 0, 100);
  }
  held.set(lock, 1);
  return once(lock);
}

function once(lock: string): () => void {
  let done = false;
  return () => {
    if (done) return;
    done = true;
    const n = held.get(lock) ?? 0;
    if (n > 1) {
      held.set(lock, n - 1);
      return;
    }
    held.delete(lock);
    fs.rmSync(lock, { force: true });
  };
}

/** Runs `fn` holding the lock. */
export function withLock<T>(lock: string, target: string, o: LockOptions, fn: () => T): T {
  const release = acquireLock(lock, target, o);
  try {
    return fn();
  } finally {
    release();
  }
}

// A process that exits (process.exit included) drops its locks; a killed one leaves them stale.
process.on('exit', () => {
  for (const lock of held.keys()) fs.rmSync(lock, { force: true });
});
