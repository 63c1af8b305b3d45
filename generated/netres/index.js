// tk_netres — typed wrapper of the compiled model NetRes (tensorkiln codegen 1).
// Generated file: do not edit. Standalone: needs only Node (>= 20.19 to require() it from CommonJS),
// build/Release/tk_netres.node and build/init.safetensors, the model's initial weights
// (gen build writes both; or `cmake-js compile` here).
// Types: index.d.ts; API: README.md.
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);

/** Shapes and names of the model. */
export const info = Object.freeze({
  "model": "NetRes",
  "name": "netres",
  "prefix": "tk_netres",
  "inputShape": [
    3,
    32,
    32
  ],
  "classes": 2,
  "maxBatch": 256,
  "state": [
    {
      "name": "conv1.weight",
      "kind": "param",
      "dtype": "F32",
      "shape": [
        32,
        3,
        3,
        3
      ]
    },
    {
      "name": "conv1.bias",
      "kind": "param",
      "dtype": "F32",
      "shape": [
        32
      ]
    },
    {
      "name": "conv2.weight",
      "kind": "param",
      "dtype": "F32",
      "shape": [
        16,
        32,
        3,
        3
      ]
    },
    {
      "name": "conv2.bias",
      "kind": "param",
      "dtype": "F32",
      "shape": [
        16
      ]
    },
    {
      "name": "conv3.weight",
      "kind": "param",
      "dtype": "F32",
      "shape": [
        16,
        16,
        3,
        3
      ]
    },
    {
      "name": "conv3.bias",
      "kind": "param",
      "dtype": "F32",
      "shape": [
        16
      ]
    },
    {
      "name": "fc1.weight",
      "kind": "param",
      "dtype": "F32",
      "shape": [
        32,
        256
      ]
    },
    {
      "name": "fc1.bias",
      "kind": "param",
      "dtype": "F32",
      "shape": [
        32
      ]
    },
    {
      "name": "fc2.weight",
      "kind": "param",
      "dtype": "F32",
      "shape": [
        2,
        32
      ]
    },
    {
      "name": "fc2.bias",
      "kind": "param",
      "dtype": "F32",
      "shape": [
        2
      ]
    }
  ],
  "keys": {
    "conv1.weight": "conv1.weight",
    "conv1.bias": "conv1.bias",
    "conv2.weight": "conv2.weight",
    "conv2.bias": "conv2.bias",
    "conv3.weight": "conv3.weight",
    "conv3.bias": "conv3.bias",
    "fc1.weight": "fc1.weight",
    "fc1.bias": "fc1.bias",
    "fc2.weight": "fc2.weight",
    "fc2.bias": "fc2.bias"
  },
  "dropout": []
});

/** The weights new Model() starts from: the model's initialisation, saved by gen build. */
export const INIT_WEIGHTS = path.join(here, 'build', 'init.safetensors');

/** CPU feature flags of this machine (from /proc/cpuinfo), or null where unknown. */
export function cpuFlags() {
  try {
    const m = /^flags\s*:(.*)$/m.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'));
    return m ? new Set(m[1].trim().split(/\s+/)) : null;
  } catch {
    return null;
  }
}

/** Throws if the build was compiled for instructions this CPU lacks (it must be rebuilt, not run). */
export function checkBuild(dir = here) {
  const addonPath = path.join(dir, 'build', 'Release', 'tk_netres.node');
  const manifestPath = path.join(dir, 'build', 'manifest.json');
  if (!fs.existsSync(addonPath) || !fs.existsSync(manifestPath))
    throw new Error(`NetRes: no build in ${dir} (run \`gen build\` or \`cmake-js compile\` there)`);
  const manifest = JSON.parse(fs.readFileSync(manifestPath, 'utf8'));
  const flags = cpuFlags();
  if (flags && manifest.isa && Array.isArray(manifest.isa.flags)) {
    const missing = manifest.isa.flags.filter((f) => !flags.has(f));
    if (missing.length)
      throw new Error(`NetRes: built for ${manifest.isa.march} but this CPU lacks ${missing.join(', ')}: rebuild it (gen build, or cmake-js compile in ${dir})`);
  }
  return { addonPath, manifest };
}

let native = null;
function addon() {
  if (!native) {
    const { addonPath } = checkBuild();
    // OpenMP threads meet at barriers every step. libgomp's default spin-wait
    // (300k spins) collapses throughput ~10x when other processes hold the
    // cores; a short spin then sleep costs little on an idle machine. libgomp
    // reads this when it loads, with the addon; OMP_WAIT_POLICY or an explicit
    // GOMP_SPINCOUNT wins. In a worker_threads Worker process.env is the
    // worker's own copy and libgomp never sees it: set it before starting node.
    if (process.env.OMP_WAIT_POLICY === undefined && process.env.GOMP_SPINCOUNT === undefined) process.env.GOMP_SPINCOUNT = '1000';
    native = require(addonPath);
  }
  return native;
}

const STATE = info.state;
const INDEX = new Map(STATE.map((s, i) => [s.name, i]));

function numel(shape) {
  return shape.reduce((a, b) => a * b, 1);
}

/** NetRes compiled for the CPU. Input [batch, 3, 32, 32] float32, output [batch, 2] logits. */
export class Model {
  constructor(options = {}) {
    const maxBatch = options.maxBatch ?? info.maxBatch;
    this._n = new (addon().Model)(maxBatch);
    /** Base seed of the dropout masks; step s uses stepSeed(seed, s). */
    this.seed = options.seed ?? 0;
    /** Number of training steps taken (the dropout step counter). */
    this.step = 0;
    const weights = options.weights === undefined ? INIT_WEIGHTS : options.weights;
    if (weights === INIT_WEIGHTS && !fs.existsSync(weights))
      throw new Error(`NetRes: no initial weights at ${weights} (gen build writes them); pass { weights: 'file.safetensors' }, or { weights: null } to start from zeros`);
    if (weights !== null) this.loadWeights(weights);
  }

  /** A model starting from the weights in `file` (a safetensors state_dict, or a gen train checkpoint). */
  static load(file, options = {}) {
    return new Model({ ...options, weights: file });
  }

  get maxBatch() {
    return this._n.maxBatch;
  }

  /**
   * Frees the native memory now rather than at garbage collection; any later call throws.
   * `using m = create()` (Symbol.dispose) does the same at the end of the scope.
   */
  dispose() {
    this._n.dispose();
  }

  [Symbol.dispose]() {
    this.dispose();
  }

  get disposed() {
    return this._n.disposed;
  }

  /** Heap bytes of the native model (reported to the garbage collector); 0 once disposed. */
  get nativeBytes() {
    return this._n.nativeBytes;
  }

  get training() {
    return this._n.training;
  }

  get numThreads() {
    return this._n.numThreads;
  }

  set numThreads(n) {
    this._n.setNumThreads(n);
  }

  train(mode = true) {
    this._n.setTraining(!!mode);
    return this;
  }

  eval() {
    return this.train(false);
  }

  /** The dropout seed of training step `step` for this model's base seed. */
  stepSeed(step = this.step) {
    return addon().stepSeed(this.seed >>> 0, step);
  }

  /** Logits of x; in train mode dropout uses `seed` (default: this step's seed). */
  forward(x, batch, seed = this.stepSeed(this.step)) {
    return this._n.forward(x, batch, seed >>> 0);
  }

  trainStep(x, labels, batch, opts) {
    const r = this._n.trainStep(x, labels, batch, opts, this.stepSeed(this.step), false);
    this.step++;
    this._lastBatch = batch;
    this.lastCorrect = r.correct;
    return r.loss;
  }

  /** As trainStep, with the train-mode logits and the count of correct predictions. */
  trainStepDetailed(x, labels, batch, opts, seed = this.stepSeed(this.step)) {
    const r = this._n.trainStep(x, labels, batch, opts, seed >>> 0, true);
    this.step++;
    this._lastBatch = batch;
    return r;
  }

  /** Steps over order[] (indices into the n samples of x/labels) in batches of batchSize, in one native call. */
  trainEpoch(x, labels, n, batchSize, order, opts) {
    const r = this._n.trainEpoch(x, labels, n, batchSize, order, opts, this.seed >>> 0, this.step);
    this.step += r.steps;
    return { loss: r.loss, correct: r.correct, steps: r.steps };
  }

  /** trainEpoch's random crop (padding crop; 0: none) and horizontal flip from now on; fill: the padding per channel. */
  setAugment(crop, flip, fill = null) {
    this._n.setAugment(crop, !!flip, fill);
  }

  /** Class indices and softmax probabilities [batch, 2] of x, in eval mode (the mode is restored). */
  predict(x, batch) {
    const was = this.training;
    let logits;
    try {
      logits = this.eval().forward(x, batch);
    } finally {
      this.train(was);
    }
    const k = info.classes;
    const classes = new Int32Array(batch);
    const probabilities = new Float32Array(batch * k);
    for (let b = 0; b < batch; b++) {
      const row = logits.subarray(b * k, (b + 1) * k);
      const max = Math.max(...row);
      let sum = 0;
      for (let j = 0; j < k; j++) sum += probabilities[b * k + j] = Math.exp(row[j] - max);
      for (let j = 0; j < k; j++) {
        probabilities[b * k + j] /= sum;
        if (row[j] > row[classes[b]]) classes[b] = j;
      }
    }
    return { classes, probabilities };
  }

  /**
   * Writes the state_dict under PyTorch names to a safetensors file, atomically (torch:
   * model.load_state_dict(safetensors.torch.load_file(file))). trainingState: also the optimiser
   * state under 'train.' keys, as gen train's checkpoints, to resume training.
   */
  save(file, { trainingState = false, metadata } = {}) {
    const tensors = this.stateDict();
    if (trainingState) for (const [k, t] of this.trainingState()) tensors.set(`train.${k}`, t);
    writeSafetensors(file, tensors, metadata);
  }

  /**
   * Strict load of a safetensors state_dict (or a gen train checkpoint, whose 'train.' entries
   * restore the optimiser state); nothing changes on error. Returns the file's metadata.
   */
  loadWeights(file) {
    const { tensors, metadata } = readSafetensors(file);
    const state = new Map();
    const training = new Map();
    for (const [k, t] of tensors) (k.startsWith('train.') ? training : state).set(k.replace(/^train\./, ''), t);
    try {
      this.loadStateDict(state);
      if (training.size) this.loadTrainingState(training);
    } catch (e) {
      throw new Error(`${file}: ${e.message}`, { cause: e });
    }
    return metadata;
  }

  /**
   * Optimiser and dropout-step state, as the interpreter's training state: 'step', 'momentum.<param>' (SGD),
   * 'exp_avg.<param>', 'exp_avg_sq.<param>' and 'adam_step' (Adam/AdamW).
   */
  trainingState() {
    const out = new Map([['step', { dtype: 'I64', shape: [], data: BigInt64Array.of(BigInt(this.step)) }]]);
    const adam = this._n.adamSteps();
    if (adam > 0) out.set('adam_step', { dtype: 'I64', shape: [], data: BigInt64Array.of(BigInt(adam)) });
    STATE.forEach((s, i) => {
      if (s.kind !== 'param') return;
      const m = this._n.getMomentum(i);
      if (m) out.set(`momentum.${s.name}`, { dtype: 'F32', shape: [...s.shape], data: m });
      if (adam > 0) {
        out.set(`exp_avg.${s.name}`, { dtype: 'F32', shape: [...s.shape], data: this._n.getOptState(0, i) });
        out.set(`exp_avg_sq.${s.name}`, { dtype: 'F32', shape: [...s.shape], data: this._n.getOptState(1, i) });
      }
    });
    return out;
  }

  loadTrainingState(state) {
    const step = state.get('step');
    if (!step || step.dtype !== 'I64') throw new Error("training state has no I64 'step'");
    const adam = state.get('adam_step');
    if (adam && adam.dtype !== 'I64') throw new Error("training state: 'adam_step' must be I64");
    // every entry is checked before the optimiser is reset: nothing changes on error
    const slots = { momentum: -1, exp_avg: 0, exp_avg_sq: 1 };
    const parsed = [];
    for (const [k, t] of state) {
      if (k === 'step' || k === 'adam_step') continue;
      const dot = k.indexOf('.');
      const slot = dot > 0 ? slots[k.slice(0, dot)] : undefined;
      const s = slot === undefined ? undefined : STATE[INDEX.get(k.slice(dot + 1))];
      if (!s || s.kind !== 'param') throw new Error(`training state: unexpected key '${k}'`);
      if ((slot >= 0) !== !!adam) throw new Error(`training state: '${k}' ${adam ? 'is an SGD buffer beside Adam state' : 'needs adam_step'}`);
      if (!t.data || t.data.length !== numel(s.shape)) throw new Error(`training state: '${k}' has ${t.data ? t.data.length : 0} values, expected ${numel(s.shape)}`);
      parsed.push([slot, INDEX.get(k.slice(dot + 1)), t.data instanceof Float32Array ? t.data : Float32Array.from(t.data)]);
    }
    this._n.resetOptimizer();
    for (const [slot, i, data] of parsed) slot < 0 ? this._n.setMomentum(i, data) : this._n.setOptState(slot, i, data);
    if (adam) this._n.setAdamSteps(Number(adam.data[0]));
    this.step = Number(step.data[0]);
  }

  resetOptimizer() {
    this._n.resetOptimizer();
  }

  /** Every state_dict key (shared modules under each of their names), copies, in PyTorch's order. */
  stateDict() {
    const out = new Map();
    const cache = new Map();
    for (const [key, canon] of Object.entries(info.keys)) {
      const i = INDEX.get(canon);
      if (!cache.has(i)) cache.set(i, this._n.getState(i));
      const s = STATE[i];
      out.set(key, { dtype: s.dtype, shape: [...s.shape], data: cache.get(i).slice() });
    }
    return out;
  }

  /** Strict load by PyTorch names: missing/unexpected keys and shape/dtype mismatches all reported, nothing changed on error. */
  loadStateDict(state) {
    const given = state instanceof Map ? state : new Map(Object.entries(state));
    const problems = [];
    for (const [key, canon] of Object.entries(info.keys)) {
      const t = given.get(key);
      const s = STATE[INDEX.get(canon)];
      if (!t) problems.push(`missing key '${key}'`);
      else if ((t.shape ?? []).join() !== s.shape.join()) problems.push(`'${key}': shape [${t.shape}] given, [${s.shape}] in the model`);
      else if (t.dtype !== s.dtype) problems.push(`'${key}': dtype ${t.dtype} given, ${s.dtype} in the model`);
      else if (!t.data || t.data.length !== numel(s.shape)) problems.push(`'${key}': ${t.data ? t.data.length : 0} values, expected ${numel(s.shape)}`);
    }
    // own keys only: `in` would accept 'constructor', 'toString' or '__proto__' as state names
    for (const k of given.keys()) if (!Object.hasOwn(info.keys, k)) problems.push(`unexpected key '${k}'`);
    if (problems.length) throw new Error(`loadStateDict: ${problems.length} problem(s):\n  ${problems.join('\n  ')}`);
    for (const [key, canon] of Object.entries(info.keys)) {
      const t = given.get(key);
      const s = STATE[INDEX.get(canon)];
      const data = s.dtype === 'I64' ? BigInt64Array.from(t.data, (v) => BigInt(v)) : t.data instanceof Float32Array ? t.data : Float32Array.from(t.data);
      this._n.setState(INDEX.get(canon), data);
    }
  }

  /** Sets the given entries (state_dict keys or canonical names); unknown names and size mismatches throw, nothing changed on error. */
  loadState(state) {
    const given = state instanceof Map ? [...state] : Object.entries(state);
    const todo = [];
    for (const [key, t] of given) {
      const canon = Object.hasOwn(info.keys, key) ? info.keys[key] : key;
      const i = INDEX.get(canon);
      if (i === undefined) throw new Error(`loadState: unknown state '${key}'`);
      const s = STATE[i];
      if (!t.data || t.data.length !== numel(s.shape)) throw new Error(`loadState: '${key}' has ${t.data ? t.data.length : 0} values, expected ${numel(s.shape)}`);
      todo.push([i, s.dtype === 'I64' ? BigInt64Array.from(t.data, (v) => BigInt(v)) : Float32Array.from(t.data)]);
    }
    for (const [i, d] of todo) this._n.setState(i, d);
  }

  /** Every parameter and buffer once, by canonical name. */
  canonicalState() {
    return new Map(STATE.map((s, i) => [s.name, { dtype: s.dtype, shape: [...s.shape], data: this._n.getState(i) }]));
  }

  /**
   * Dropout multipliers drawn elsewhere (PyTorch's, replayed by gen check), by module path,
   * each [batch, values per sample], used by the following train steps; an absent path (or no map) goes back to the hash.
   */
  replayDropout(masks, batch) {
    for (const d of info.dropout) {
      const m = masks ? masks.get(d.module) : undefined;
      if (m && m.length !== batch * d.numel) throw new RangeError(`NetRes: the dropout mask of ${d.module} has ${m.length} values, not ${batch} x ${d.numel}`);
      this._n.setDropoutMask(d.stream, m ? Float32Array.from(m) : null, batch);
    }
  }

  /** d loss / d x of the last train step, [batch, C, H, W] (packages built with input gradients). */
  inputGrad() {
    if (!this._lastBatch) throw new Error('NetRes: inputGrad() needs a train step first');
    return this._n.inputGrad(this._lastBatch);
  }

  /**
   * d loss / d x [batch, C, H, W] of x and labels without a step: weights, BatchNorm buffers and momentum stay as they
   * were. Eval mode unless { train: true } (dropout then uses `seed`); loss as trainStep's opts.loss. Also the logits
   * and the mean loss. Packages built with input gradients; otherwise throws.
   */
  inputGradient(x, labels, batch, { train = false, seed = this.stepSeed(this.step), loss } = {}) {
    return this._n.inputGradient(x, labels, batch, !!train, seed >>> 0, loss);
  }

  /** Whether inputGradient() works: the package was built with input gradients. */
  get hasInputGradient() {
    return info.inputGrad === true;
  }

  /** The taps of this package (gen build --taps): the name each was asked by, its graph node, its per-sample shape. */
  get taps() {
    return addon().taps;
  }

  /**
   * A forward of x in the current mode, then every tap's value: Map name -> { shape: [batch, ...], data }.
   * (Train mode updates BatchNorm buffers, as forward does.)
   */
  activations(x, batch, seed) {
    this.forward(x, batch, seed);
    return new Map(addon().taps.map((t, i) => [t.name, { shape: [batch, ...t.shape], data: this._n.tap(i, batch, x) }]));
  }

  /** Parameter gradients of the last train step (penalties included), by canonical name. */
  grads() {
    const out = new Map();
    STATE.forEach((s, i) => {
      if (s.kind === 'param') out.set(s.name, this._n.getGrad(i));
    });
    return out;
  }
}

export function create(options) {
  return new Model(options);
}

// safetensors: u64 LE header length, JSON header {name: {dtype, shape, data_offsets}, __metadata__}, data.
const DTYPES = { F32: Float32Array, F64: Float64Array, I64: BigInt64Array, I32: Int32Array };
const LITTLE_ENDIAN = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1;

/** Reads a safetensors file: { tensors: Map<name, { dtype, shape, data }>, metadata }. Any problem throws, naming the file. */
export function readSafetensors(file) {
  const fail = (what) => {
    throw new Error(`${file}: ${what}`);
  };
  if (!LITTLE_ENDIAN) fail('safetensors needs a little-endian machine');
  if (!fs.existsSync(file)) fail('no such file');
  const bytes = fs.readFileSync(file);
  if (bytes.length < 8) fail(`${bytes.length} bytes: too short for a safetensors file`);
  const n = bytes.readBigUInt64LE(0);
  if (n > BigInt(bytes.length - 8)) fail(`header length ${n} runs past the end of the file (${bytes.length} bytes): not a safetensors file?`);
  const start = 8 + Number(n);
  let header;
  try {
    header = JSON.parse(bytes.toString('utf8', 8, start));
  } catch (e) {
    fail(`header is not valid JSON (${e.message})`);
  }
  if (!header || typeof header !== 'object' || Array.isArray(header)) fail('header is not a JSON object');
  const tensors = new Map();
  for (const [name, e] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const Array_ = DTYPES[e?.dtype];
    if (!Array_) fail(`tensor '${name}': dtype ${JSON.stringify(e?.dtype)} is not one of ${Object.keys(DTYPES).join(', ')}`);
    if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) fail(`tensor '${name}': shape ${JSON.stringify(e.shape)} is not a list of sizes`);
    const count = numel(e.shape);
    const [begin, end] = Array.isArray(e.data_offsets) ? e.data_offsets : [];
    if (!Number.isSafeInteger(begin) || begin < 0 || end !== begin + count * Array_.BYTES_PER_ELEMENT || start + end > bytes.length)
      fail(`tensor '${name}': data_offsets ${JSON.stringify(e.data_offsets)} do not hold ${e.dtype} [${e.shape}] inside the file`);
    const copy = new Uint8Array(bytes.subarray(start + begin, start + end)); // aligned for the typed array
    tensors.set(name, { dtype: e.dtype, shape: [...e.shape], data: new Array_(copy.buffer, 0, count) });
  }
  return { tensors, metadata: { ...header.__metadata__ } };
}

/** Writes tensors (Map or object of { dtype, shape, data }) and string metadata to a safetensors file, atomically. */
export function writeSafetensors(file, tensors, metadata) {
  if (!LITTLE_ENDIAN) throw new Error(`${file}: safetensors needs a little-endian machine`);
  const header = metadata ? { __metadata__: metadata } : {};
  const parts = [];
  let offset = 0;
  for (const [name, t] of tensors instanceof Map ? tensors : Object.entries(tensors)) {
    if (!DTYPES[t.dtype] || !(t.data instanceof DTYPES[t.dtype]) || t.data.length !== numel(t.shape))
      throw new Error(`${file}: tensor '${name}' is not a ${t.dtype} [${t.shape}] typed array`);
    parts.push(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  const json = JSON.stringify(header);
  const text = Buffer.from(json + ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8));
  const size = Buffer.alloc(8);
  size.writeBigUInt64LE(BigInt(text.length));
  writeFileAtomic(file, Buffer.concat([size, text, ...parts]));
}

/** A temporary file beside `file`, then a rename: a crash never leaves half a file. */
function writeFileAtomic(file, bytes) {
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    fs.writeFileSync(tmp, bytes, { flush: true });
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
}
