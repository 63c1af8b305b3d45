// The bounds every reader of untrusted files keeps (README "Security"): each
// is a clear error naming the file and the limit, never a hang or a blow-up.
// A state_dict of the small CNNs this tool compiles is a few megabytes; the
// limits are far above that and far below what would exhaust a machine.

const MiB = 1024 * 1024;

/** Bytes of tensor data one weights file may yield (views and copies together). */
export const MAX_TENSOR_BYTES = 1024 * MiB;

/** A weights file larger than this is not read (Node itself reads at most 2 GiB at once). */
export const MAX_WEIGHTS_FILE_BYTES = 2047 * MiB;

/** Deflated zip entries above DEFLATE_FREE_BYTES may expand at most this much. */
export const MAX_DEFLATE_RATIO = 100;
export const DEFLATE_FREE_BYTES = 1 * MiB;

/** Bytes of one pickled integer (LONG1/LONG4; digits of a text INT/LONG): 8192 bits. */
export const MAX_PICKLE_INT_BYTES = 1024;

/** How deep dicts may nest in a state_dict, and tuples in a dict key. */
export const MAX_NESTING = 100;

/** Pixels of one decoded image (width × height), whatever the format. */
export const MAX_IMAGE_PIXELS = 50_000_000;

/** An image file larger than this is not read. */
export const MAX_IMAGE_FILE_BYTES = 256 * MiB;

/** "1 GiB", "512 MiB", "1000 bytes": a limit as people read it. */
export function formatBytes(n: number): string {
  if (n >= 1024 * MiB && n % (1024 * MiB) === 0) return `${n / (1024 * MiB)} GiB`;
  if (n >= MiB && n % MiB === 0) return `${n / MiB} MiB`;
  return `${n} bytes`;
}
