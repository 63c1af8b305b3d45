// The epilogue of a conv or BatchNorm group for the CUDA kernels: its act,
// fused max pool or residual add over the head's [C, H, W] output.
import type { Group } from '../middle.js';
import { actOf, type Epilogue, type FusedPool } from './kernels.js';

export function epilogueOf(g: Group): Epilogue {
  const s = g.head.shape;
  // BatchNorm1d on [C] or [C, L]: one row per channel
  const [C, H, W] = s.length === 3 ? s : s.length === 2 ? [s[0], 1, s[1]] : [s[0], 1, 1];
  let pool: FusedPool | null = null;
  if (g.pool) pool = { kh: g.pool.attrs.kh, kw: g.pool.attrs.kw, oh: g.pool.shape[1], ow: g.pool.shape[2] };
  return { act: actOf(g.act), pool, C, H, W, add: !!g.add };
}
