// Files read and written safely: a read names the file and refuses what is
// not a regular file (a FIFO would block for ever) or is too large; a write
// is atomic, so a crash or an error never leaves a half-written file, and it
// sweeps the temp files that killed writers of the same file left behind.
import fs from 'node:fs';
import path from 'node:path';

/** Why an fs call failed, in words, with the path: "cannot write x: no space left on device (ENOSPC)". */
export function fsError(action: string, file: string, e: unknown): Error {
  const err = e as NodeJS.ErrnoException;
  const why: Record<string, string> = {
    ENOENT: 'no such file or directory',
    EACCES: 'permission denied',
    EPERM: 'operation not permitted',
    EISDIR: 'it is a directory',
    ENOTDIR: 'a part of the path is not a directory',
    ENOSPC: 'no space left on device',
    EDQUOT: 'disk quota exceeded',
    EROFS: 'read-only file system',
    EMFILE: 'too many open files',
    EEXIST: 'it already exists',
  };
  const reason = err?.code ? `${why[err.code] ?? err.message} (${err.code})` : String(err?.message ?? e);
  return new Error(`cannot ${action} ${file}: ${reason}`, { cause: e });
}

/** The kind of a non-regular file, for messages. */
function kindOf(st: fs.Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO (named pipe)';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  return 'not a regular file';
}

/**
 * The bytes of a regular file of at most `maxBytes`. `what` names it in errors
 * ("weights file", "image file"). A FIFO, device or directory is refused before
 * it is opened for reading, so nothing blocks.
 */
export function readRegularFile(file: string, what: string, maxBytes: number): Buffer {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new Error(`${what} not found: ${file}`, { cause: e });
    throw fsError('read', file, e);
  }
  if (!st.isFile()) throw new Error(`${what} ${file} is ${kindOf(st)}, not a regular file`);
  if (st.size > maxBytes) throw new Error(`${what} ${file} is ${st.size} bytes, over the ${maxBytes}-byte limit`);
  let fd: number | undefined;
  try {
    // O_NONBLOCK: should the path have become a FIFO since the stat, open does not wait for a writer
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
    const st2 = fs.fstatSync(fd);
    if (!st2.isFile()) throw new Error(`${what} ${file} is ${kindOf(st2)}, not a regular file`);
    if (st2.size > maxBytes) throw new Error(`${what} ${file} is ${st2.size} bytes, over the ${maxBytes}-byte limit`);
    return fs.readFileSync(fd);
  } catch (e) {
    if (e instanceof Error && !(e as NodeJS.ErrnoException).code) throw e;
    throw fsError('read', file, e);
  } finally {
    if (fd !== undefined) closeQuietly(fd);
  }
}

/** `.<name>.<pid>.<random>.tmp`: the temp file of writeFileAtomic, beside its target. */
const TEMP = /^\.(.+)\.(\d+)\.[a-z0-9]+\.tmp$/;

/** Whether a process of this machine is alive (EPERM: alive, owned by another user; a zombie has ended). */
export function pidAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    // /proc/<pid>/stat: "pid (name) S ...", state Z for an exited child not yet reaped
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return true; // no /proc: kill(0) said it exists
  }
}

/** Removes temp files of `file` whose writer died (kill -9, power loss); those of live writers stay. */
export function sweepStaleTemps(file: string): string[] {
  const dir = path.dirname(path.resolve(file));
  const base = path.basename(file);
  const removed: string[] = [];
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return removed;
  }
  for (const n of names) {
    const m = TEMP.exec(n);
    if (!m || m[1] !== base || pidAlive(Number(m[2]))) continue;
    try {
      fs.rmSync(path.join(dir, n), { force: true });
      removed.push(path.join(dir, n));
    } catch {
      // another process swept it first, or it is not ours to remove
    }
  }
  return removed;
}

/**
 * Write `content` to `file` atomically: a temp file in the same folder, fsync,
 * rename. On any failure the old file is untouched and the temp file removed;
 * the error names `file` and the cause (no space left, a directory in the way, ...).
 */
export function writeFileAtomic(file: string, content: Uint8Array | string): void {
  const bytes = typeof content === 'string' ? Buffer.from(content) : content;
  const dir = path.dirname(path.resolve(file));
  let st: fs.Stats | undefined;
  try {
    st = fs.statSync(file);
  } catch {
    // absent: the usual case
  }
  if (st && !st.isFile()) throw new Error(`cannot write ${file}: it is ${kindOf(st)}, not a regular file`);
  sweepStaleTemps(file);
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${Math.random().toString(36).slice(2, 10)}.tmp`);
  let fd: number | undefined;
  try {
    fd = fs.openSync(tmp, 'wx', 0o644);
    let done = 0;
    while (done < bytes.length) done += fs.writeSync(fd, bytes, done, bytes.length - done);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = undefined;
    fs.renameSync(tmp, file);
  } catch (e) {
    if (fd !== undefined) closeQuietly(fd);
    fs.rmSync(tmp, { force: true });
    throw fsError('write', file, e);
  }
  syncDir(dir);
}

function closeQuietly(fd: number): void {
  try {
    fs.closeSync(fd);
  } catch {
    // already failing; the first error is the one to report
  }
}

/** Make the rename itself durable; some file systems refuse, which is harmless. */
function syncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch {
    // best effort
  } finally {
    if (fd !== undefined) closeQuietly(fd);
  }
}
