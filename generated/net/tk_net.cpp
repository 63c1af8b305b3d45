// tk_net.cpp — forward and backward of Net, specialised for its shapes
// (tensorkiln codegen 1). Generated file: do not edit.
//
// Graph: 11 nodes, input [B, 3, 32, 32], 8 parameters (18090 floats)
// Plan (8 kernels, 4 forward / 4 backward calls, arena 41472 B per sample):
//   conv2d+tanh+maxpool2d [B, 3, 32, 32] -> [B, 16, 16, 16] (conv1 · models/book.ts:15)
//   conv2d+tanh+maxpool2d [B, 16, 16, 16] -> [B, 8, 8, 8] (conv2 · models/book.ts:16)
//   reshape [B, 8, 8, 8] -> [B, 512] ((root) · models/book.ts:17)
//   linear+tanh [B, 512] -> [B, 32] (fc1 · models/book.ts:18)
//   linear [B, 32] -> [B, 2] (fc2 · models/book.ts:19)
#include "tk_net.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__unix__) || defined(__APPLE__)
#include <sys/mman.h>
#endif

#include "tk_runtime.h"

namespace {

using tk::Ctx;

constexpr int IN_NUMEL = 3072;
constexpr int IN_C = 3, IN_H = 32, IN_W = 32;
// augmentation's hash stream and largest crop padding (AUGMENT_STREAM, MAX_CROP_PADDING of src/data/augment.ts)
constexpr uint32_t AUGMENT_STREAM = 1635084032u;
constexpr int MAX_CROP_PADDING = 127;
constexpr int CLASSES = 2;
constexpr int NUM_STATE = 8;
constexpr int NUM_PARAMS = 8;
constexpr size_t PARAM_FLOATS = 18090;
constexpr size_t FBUF_FLOATS = 0;
constexpr size_t IBUF_COUNT = 0;
constexpr size_t ARENA_BYTES_PER_SAMPLE = 41472;
constexpr size_t RED_PER_THREAD = 0;
constexpr int MAX_THREADS = 64;
// dropout nodes by stream: values per sample
constexpr int NUM_DROPOUT = 0;
const size_t DROPOUT_NUMEL[NUM_DROPOUT + 1] = {  0 };
constexpr int NUM_BUFFERS = 12;  // arena, P, G, M, FB, IB, GP, scratch, red, xb, lb, V

// ---------------------------------------------------------------- activations
// Each activation's forward and derivatives on SIMD vectors, printed from
// src/ops/activations.ts (the interpreter evaluates the same formulas).
using tk::vf;
using tk::vsplat;
using tk::vexp;
using tk::vtanh;
using tk::vmax;
using tk::vmin;
using tk::vlanes;
// tanh
struct Act_tanh {
  static constexpr bool none = false;
  static TK_INLINE vf f(vf x) { return vtanh(x); }
  static TK_INLINE vf dx(vf x) { return (vsplat(1.0f) - (vtanh(x) * vtanh(x))); }
  static TK_INLINE vf dy(vf y) { return (vsplat(1.0f) - (y * y)); }
  static TK_INLINE float dy1(float y) { return (1.0f - (y * y)); }
};

// ---------------------------------------------------------------- kernels

// Conv2d 3->16 3x3 stride 1,1 pad 1,1 + bias + tanh + maxpool 2x2
// x [B, 3, 32, 32] -> out [B, 16, 16, 16]; weight [16, 3, 3, 3]
// first use: conv1 · models/book.ts:15
[[maybe_unused]] void k0_conv_fwd(const Ctx& c, float* out, uint8_t* am, const float* x, const float* w, const float* b) {
  constexpr int CI = 3;
  constexpr int CO = 16;
  constexpr int H = 32;
  constexpr int W = 32;
  constexpr int KH = 3;
  constexpr int KW = 3;
  constexpr int SH = 1;
  constexpr int SW = 1;
  constexpr int PH = 1;
  constexpr int PW = 1;
  constexpr int G = 1;
  using ACT = Act_tanh;
  constexpr bool POOL = true;
  tk::conv_fwd<CI, CO, H, W, KH, KW, SH, SW, PH, PW, G, ACT, POOL>(c, out, am, x, w, b);
}

// Conv2d 16->8 3x3 stride 1,1 pad 1,1 + bias + tanh + maxpool 2x2
// x [B, 16, 16, 16] -> out [B, 8, 8, 8]; weight [8, 16, 3, 3]
// first use: conv2 · models/book.ts:16
[[maybe_unused]] void k1_conv_fwd(const Ctx& c, float* out, uint8_t* am, const float* x, const float* w, const float* b) {
  constexpr int CI = 16;
  constexpr int CO = 8;
  constexpr int H = 16;
  constexpr int W = 16;
  constexpr int KH = 3;
  constexpr int KW = 3;
  constexpr int SH = 1;
  constexpr int SW = 1;
  constexpr int PH = 1;
  constexpr int PW = 1;
  constexpr int G = 1;
  using ACT = Act_tanh;
  constexpr bool POOL = true;
  tk::conv_fwd<CI, CO, H, W, KH, KW, SH, SW, PH, PW, G, ACT, POOL>(c, out, am, x, w, b);
}

// Linear 512->32 + bias + tanh
// x [B, 512] -> out [B, 32]; weight [32, 512]
// first use: fc1 · models/book.ts:18
[[maybe_unused]] void k2_linear_fwd(const Ctx& c, float* out, const float* x, const float* w, const float* b) {
  constexpr int I = 512;
  constexpr int O = 32;
  using ACT = Act_tanh;
  tk::linear_fwd<I, O, ACT>(c, out, x, w, b);
}

// Linear 32->2 + bias
// x [B, 32] -> out [B, 2]; weight [2, 32]
// first use: fc2 · models/book.ts:19
[[maybe_unused]] void k3_linear_fwd(const Ctx& c, float* out, const float* x, const float* w, const float* b) {
  constexpr int I = 32;
  constexpr int O = 2;
  using ACT = tk::ActNone;
  tk::linear_fwd<I, O, ACT>(c, out, x, w, b);
}

// backward of: Linear 32->2 + bias
// x [B, 32] -> out [B, 2]; weight [2, 32]
// first use: fc2 · models/book.ts:19
[[maybe_unused]] void k4_linear_bwd(const Ctx& c, float* dx, float* gw, float* gb, const float* gy, const float* y, const float* x, const float* w) {
  constexpr int I = 32;
  constexpr int O = 2;
  using ACT = tk::ActNone;
  constexpr bool NEED_DX = true;
  constexpr bool ACCUM_DX = false;
  tk::linear_bwd<I, O, ACT, NEED_DX, ACCUM_DX>(c, dx, gw, gb, gy, y, x, w);
}

// backward of: Linear 512->32 + bias + tanh
// x [B, 512] -> out [B, 32]; weight [32, 512]
// first use: fc1 · models/book.ts:18
[[maybe_unused]] void k5_linear_bwd(const Ctx& c, float* dx, float* gw, float* gb, const float* gy, const float* y, const float* x, const float* w) {
  constexpr int I = 512;
  constexpr int O = 32;
  using ACT = Act_tanh;
  constexpr bool NEED_DX = true;
  constexpr bool ACCUM_DX = false;
  tk::linear_bwd<I, O, ACT, NEED_DX, ACCUM_DX>(c, dx, gw, gb, gy, y, x, w);
}

// backward of: Conv2d 16->8 3x3 stride 1,1 pad 1,1 + bias + tanh + maxpool 2x2
// x [B, 16, 16, 16] -> out [B, 8, 8, 8]; weight [8, 16, 3, 3]
// first use: conv2 · models/book.ts:16
[[maybe_unused]] void k6_conv_bwd(const Ctx& c, float* dx, float* gw, float* gb, const float* gy, const float* y, const uint8_t* am, const float* x, const float* w) {
  constexpr int CI = 16;
  constexpr int CO = 8;
  constexpr int H = 16;
  constexpr int W = 16;
  constexpr int KH = 3;
  constexpr int KW = 3;
  constexpr int SH = 1;
  constexpr int SW = 1;
  constexpr int PH = 1;
  constexpr int PW = 1;
  constexpr int G = 1;
  using ACT = Act_tanh;
  constexpr bool POOL = true;
  constexpr bool NEED_DX = true;
  constexpr bool ACCUM_DX = false;
  tk::conv_bwd<CI, CO, H, W, KH, KW, SH, SW, PH, PW, G, ACT, POOL, NEED_DX, ACCUM_DX>(c, dx, gw, gb, gy, y, am, x, w);
}

// backward of: Conv2d 3->16 3x3 stride 1,1 pad 1,1 + bias + tanh + maxpool 2x2
// x [B, 3, 32, 32] -> out [B, 16, 16, 16]; weight [16, 3, 3, 3]
// first use: conv1 · models/book.ts:15
[[maybe_unused]] void k7_conv_bwd(const Ctx& c, float* dx, float* gw, float* gb, const float* gy, const float* y, const uint8_t* am, const float* x, const float* w) {
  constexpr int CI = 3;
  constexpr int CO = 16;
  constexpr int H = 32;
  constexpr int W = 32;
  constexpr int KH = 3;
  constexpr int KW = 3;
  constexpr int SH = 1;
  constexpr int SW = 1;
  constexpr int PH = 1;
  constexpr int PW = 1;
  constexpr int G = 1;
  using ACT = Act_tanh;
  constexpr bool POOL = true;
  constexpr bool NEED_DX = false;
  constexpr bool ACCUM_DX = false;
  tk::conv_bwd<CI, CO, H, W, KH, KW, SH, SW, PH, PW, G, ACT, POOL, NEED_DX, ACCUM_DX>(c, dx, gw, gb, gy, y, am, x, w);
}

// ---------------------------------------------------------------- state
const tk_state_info STATE[NUM_STATE + 1] = {
    { "conv1.weight", TK_PARAM, TK_F32, 4, { 16, 3, 3, 3 }, 432 },
    { "conv1.bias", TK_PARAM, TK_F32, 1, { 16, 0, 0, 0 }, 16 },
    { "conv2.weight", TK_PARAM, TK_F32, 4, { 8, 16, 3, 3 }, 1152 },
    { "conv2.bias", TK_PARAM, TK_F32, 1, { 8, 0, 0, 0 }, 8 },
    { "fc1.weight", TK_PARAM, TK_F32, 2, { 32, 512, 0, 0 }, 16384 },
    { "fc1.bias", TK_PARAM, TK_F32, 1, { 32, 0, 0, 0 }, 32 },
    { "fc2.weight", TK_PARAM, TK_F32, 2, { 2, 32, 0, 0 }, 64 },
    { "fc2.bias", TK_PARAM, TK_F32, 1, { 2, 0, 0, 0 }, 2 },
    { nullptr, 0, 0, 0, { 0, 0, 0, 0 }, 0 },
};
// where state i lives: 0 parameters (P), 1 float buffers (FB), 2 int64 buffers (IB); offset there
const int STATE_WHERE[NUM_STATE + 1] = { 0, 0, 0, 0, 0, 0, 0, 0, 0 };
const size_t STATE_OFF[NUM_STATE + 1] = { 0, 432, 448, 1600, 1608, 17992, 18024, 18088, 0 };

// parameters: offset in P, element count, whether the per-thread partial gradient has VW lanes
const size_t PARAM_OFF[NUM_PARAMS + 1] = { 0, 432, 448, 1600, 1608, 17992, 18024, 18088, 0 };
const size_t PARAM_NUMEL[NUM_PARAMS + 1] = { 432, 16, 1152, 8, 16384, 32, 64, 2, 0 };
constexpr bool PARAM_VEC[NUM_PARAMS + 1] = { true, true, true, true, false, false, false, false, false };

struct GpTable {
  size_t o[NUM_PARAMS + 1];
  constexpr GpTable() : o() {
    const size_t n[NUM_PARAMS + 1] = { 432, 16, 1152, 8, 16384, 32, 64, 2, 0 };
    size_t off = 0;
    for (int i = 0; i < NUM_PARAMS; ++i) {
      o[i] = off;
      off += (size_t)tk::rup((int)(n[i] * (PARAM_VEC[i] ? tk::VW : 1)), 16);
    }
    o[NUM_PARAMS] = off;
  }
};
constexpr GpTable GPT{};
#define GPO(i) (GPT.o[i])
constexpr size_t GP_FLOATS = GPT.o[NUM_PARAMS];

/** Per-thread scratch floats for max batch mb. */
size_t scratch_floats(size_t mb) {
  (void)mb;
  return tk::smax({ (size_t)(tk::ConvGeo<3, 16, 1, 32, 32, 3, 3, 1, 1, 1, 1>::scratch_floats), (size_t)(tk::ConvGeo<16, 8, 1, 16, 16, 3, 3, 1, 1, 1, 1>::scratch_floats), (size_t)((size_t)mb * 2), (size_t)((size_t)mb * 32), (size_t)16 }) + 16;
}

}  // namespace

struct tk_net {
  int max_batch;
  int nthreads;
  int training;
  int has_momentum;
  int last_batch;  // batch of the last train step or input_gradient call (its input gradient)
  int last_fwd;    // batch of the last forward (what the taps hold); 0 before any
  float* dmask[NUM_DROPOUT + 1];  // dropout multipliers given from outside, by stream; NULL: the hash
  char* arena;
  float* P;   // parameters
  float* G;   // gradients of the last step
  float* M;   // SGD momentum buffers, or Adam's exp_avg
  float* V;   // Adam's exp_avg_sq
  int64_t adam_steps;  // Adam's t: steps taken with the moments in M and V
  float* FB;  // float buffers (BatchNorm running statistics)
  int64_t* IB;
  float* GP;  // per-thread partial gradients, MAX_THREADS-capped
  float* scratch;
  size_t scratch_stride;
  double* red;
  float* xb;  // staging for train_epoch batches
  int32_t* lb;
  int aug_crop;           // train_epoch's random-crop padding (0: none)
  int aug_flip;           // train_epoch's random horizontal flip
  float aug_fill[IN_C];   // the padding's value per channel
  size_t bytes;  // heap bytes of the model (memory_bytes)
  void* block;   // the one mapping holding every buffer (see alloc_buffers)
  void* parts[NUM_BUFFERS];
  char err[512];
};

namespace {

// The model's buffers, zero-filled and 64-byte aligned: carved from one
// anonymous mapping that destroy returns to the OS whole (malloc would keep
// freed blocks this large in a fragmented heap, so a process that creates and
// frees models would grow); under AddressSanitizer one allocation each, so that
// its red zones guard every buffer.
#if defined(__SANITIZE_ADDRESS__)
#define TK_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TK_ASAN 1
#endif
#endif
#if (defined(__unix__) || defined(__APPLE__)) && !defined(TK_ASAN)
#define TK_ONE_MAPPING 1
#else
#define TK_ONE_MAPPING 0
#endif

size_t rup64(size_t n) { return (n + 63) / 64 * 64; }

bool alloc_buffers(tk_net* m, const size_t* sizes, void** out) {
  size_t total = 0;
  for (int i = 0; i < NUM_BUFFERS; ++i) total += rup64(sizes[i]);
  m->bytes = sizeof(tk_net) + total;
#if TK_ONE_MAPPING
  void* block = mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (block == MAP_FAILED) return false;
  m->block = block;
  char* p = (char*)block;
  for (int i = 0; i < NUM_BUFFERS; ++i) {
    out[i] = p;
    p += rup64(sizes[i]);
  }
  return true;
#else
  for (int i = 0; i < NUM_BUFFERS; ++i) {
    m->parts[i] = out[i] = aligned_alloc(64, rup64(sizes[i]));
    if (!out[i]) return false;
    memset(out[i], 0, rup64(sizes[i]));
  }
  return true;
#endif
}

void free_buffers(tk_net* m) {
#if TK_ONE_MAPPING
  if (m->block) munmap(m->block, m->bytes - sizeof(tk_net));
#else
  for (int i = 0; i < NUM_BUFFERS; ++i) free(m->parts[i]);
#endif
}

#define F(off) ((float*)(arena + (size_t)(off) * mb))
#define U8(off) ((uint8_t*)(arena + (size_t)(off) * mb))

void fwd_steps(tk_net* m, const Ctx& c, const float* x) {
  char* const arena = m->arena;
  const size_t mb = (size_t)m->max_batch;
  (void)x;
  (void)mb;
  // conv1 · models/book.ts:15: conv2d+tanh+maxpool2d [B, 3, 32, 32] -> [B, 16, 16, 16]
  k0_conv_fwd(c, F(0), U8(32768), x, m->P + 0, m->P + 432);
  // conv2 · models/book.ts:16: conv2d+tanh+maxpool2d [B, 16, 16, 16] -> [B, 8, 8, 8]
  k1_conv_fwd(c, F(36864), U8(40960), F(0), m->P + 448, m->P + 1600);
  // fc1 · models/book.ts:18: linear+tanh [B, 512] -> [B, 32]
  k2_linear_fwd(c, F(16384), F(36864), m->P + 1608, m->P + 17992);
  // fc2 · models/book.ts:19: linear [B, 32] -> [B, 2]
  k3_linear_fwd(c, F(16512), F(16384), m->P + 18024, m->P + 18088);
}

void bwd_steps(tk_net* m, const Ctx& c, const float* x) {
  char* const arena = m->arena;
  const size_t mb = (size_t)m->max_batch;
  (void)x;
  (void)mb;
  // fc2 · models/book.ts:19: linear [B, 32] -> [B, 2]
  TK_BARRIER();  // the output reuses memory other threads may still read
  k4_linear_bwd(c, F(16512), c.gp + GPO(6), c.gp + GPO(7), F(16640), nullptr, F(16384), m->P + 18024);
  // fc1 · models/book.ts:18: linear+tanh [B, 512] -> [B, 32]
  k5_linear_bwd(c, F(38912), c.gp + GPO(4), c.gp + GPO(5), F(16512), F(16384), F(36864), m->P + 1608);
  // conv2 · models/book.ts:16: conv2d+tanh+maxpool2d [B, 16, 16, 16] -> [B, 8, 8, 8]
  TK_BARRIER();  // the output reuses memory other threads may still read
  k6_conv_bwd(c, F(16384), c.gp + GPO(2), c.gp + GPO(3), F(38912), F(36864), U8(40960), F(0), m->P + 448);
  // conv1 · models/book.ts:15: conv2d+tanh+maxpool2d [B, 3, 32, 32] -> [B, 16, 16, 16]
  k7_conv_bwd(c, nullptr, c.gp + GPO(0), c.gp + GPO(1), F(16384), F(0), U8(32768), x, m->P + 0);
}

float* logits_buf(tk_net* m) {
  char* const arena = m->arena;
  const size_t mb = (size_t)m->max_batch;
  return F(16512);
}
/** d loss / d input [B, IN_NUMEL] after a train step, or NULL when the package was built without input gradients. */
float* input_grad_buf(tk_net* m) {
  (void)m;
  return nullptr;
}

// values kept readable after a forward (gen build --taps): per-sample arena offset, -1 for the model input
constexpr int NUM_TAPS = 0;
const tk_tap_info TAPS[NUM_TAPS + 1] = {
    { nullptr, 0, 0, { 0, 0, 0, 0 }, 0 },
};
const long TAP_OFF[NUM_TAPS + 1] = {  0 };

float* dlogits_buf(tk_net* m) {
  char* const arena = m->arena;
  const size_t mb = (size_t)m->max_batch;
  return F(16640);
}

int fail(tk_net* m, const char* fmt, long a = 0, long b = 0, long c = 0) {
  snprintf(m->err, sizeof m->err, fmt, a, b, c);
  return TK_EINVAL;
}

int thread_id() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}
int team_size() {
#ifdef _OPENMP
  return omp_get_num_threads();
#else
  return 1;
#endif
}

Ctx make_ctx(tk_net* m, int B, uint32_t seed, int train) {
  Ctx c;
  c.t = thread_id();
  c.nt = team_size();
  tk::slice(B, c.t, c.nt, c.b0, c.b1);
  c.B = B;
  c.scratch = m->scratch + (size_t)c.t * m->scratch_stride;
  c.gp = m->GP + (size_t)c.t * GP_FLOATS;
  c.red = m->red;
  c.seed = seed;
  c.train = train;
  return c;
}

int check_batch(tk_net* m, int B) {
  if (B < 1 || B > m->max_batch) return fail(m, "batch must be in [1, %ld], got %ld", m->max_batch, B);
  return TK_OK;
}

int check_opts(tk_net* m, const tk_sgd_options* o) {
  if (!o) return fail(m, "training options are NULL");
  const float v[5] = { o->lr, o->momentum, o->weight_decay, o->l1, o->l2 };
  static const char* names[5] = { "lr", "momentum", "weight_decay", "l1", "l2" };
  for (int i = 0; i < 5; ++i)
    if (!isfinite(v[i])) {
      snprintf(m->err, sizeof m->err, "training option %s must be a finite number", names[i]);
      return TK_EINVAL;
    }
  if (o->loss_kind != TK_LOSS_CROSS_ENTROPY && o->loss_kind != TK_LOSS_NLL) return fail(m, "loss_kind must be 0 (cross-entropy) or 1 (NLL), got %ld", o->loss_kind);
  if (!(o->label_smoothing >= 0.0f && o->label_smoothing <= 1.0f)) return fail(m, "label_smoothing must be in [0, 1]");
  if (o->optimizer < TK_OPT_SGD || o->optimizer > TK_OPT_ADAMW) return fail(m, "optimizer must be 0 (SGD), 1 (Adam) or 2 (AdamW), got %ld", o->optimizer);
  if (o->optimizer == TK_OPT_SGD) {
    if (o->nesterov && !(o->momentum > 0.0f)) return fail(m, "nesterov needs a momentum above 0");
    if (m->adam_steps > 0) return fail(m, "the optimizer state holds Adam moments: reset the optimizer before training with SGD");
  } else {
    if (o->momentum != 0.0f || o->nesterov) return fail(m, "momentum and nesterov are SGD options; Adam uses beta1 and beta2");
    if (!(o->beta1 >= 0.0 && o->beta1 < 1.0) || !(o->beta2 >= 0.0 && o->beta2 < 1.0)) return fail(m, "Adam betas must be in [0, 1)");
    if (!(o->eps >= 0.0) || !isfinite(o->eps)) return fail(m, "Adam eps must be a finite number >= 0");
    if (m->has_momentum) return fail(m, "the optimizer state holds SGD momentum buffers: reset the optimizer before training with Adam");
  }
  return TK_OK;
}

/** One step's optimizer scalars as float, as PyTorch applies its Python (double) scalars to float32 tensors. */
struct StepScalars {
  float lr, momentum, wd, l1, l2, nesterov, beta1, beta2, eps;
  float step_size, bc2_sqrt, omb1, omb2, decay, decoupled, first;
  int kind;
};

/** The scalars of the next step: Adam's bias corrections for t = adam_steps + 1 (rules.ts adamScalars, in double). */
StepScalars step_scalars(const tk_net* m, const tk_sgd_options* o) {
  StepScalars s;
  s.kind = o->optimizer;
  s.lr = o->lr, s.momentum = o->momentum, s.wd = o->weight_decay, s.l1 = o->l1, s.l2 = o->l2;
  s.nesterov = o->nesterov ? 1.0f : 0.0f;
  s.beta1 = (float)o->beta1, s.beta2 = (float)o->beta2, s.eps = (float)o->eps;
  s.decoupled = o->optimizer == TK_OPT_ADAMW ? 1.0f : 0.0f;
  s.first = m->has_momentum ? 0.0f : 1.0f;
  const double dlr = o->lr, db1 = o->beta1, db2 = o->beta2, dwd = o->weight_decay;
  const double t = (double)(m->adam_steps + 1), b1t = pow(db1, t), b2t = pow(db2, t);
  (void)dlr; (void)db1; (void)db2; (void)dwd; (void)b1t; (void)b2t;
  s.step_size = (float)((dlr / (1.0 - b1t)));
  s.bc2_sqrt = (float)(sqrt((1.0 - b2t)));
  s.omb1 = (float)((1.0 - db1));
  s.omb2 = (float)((1.0 - db2));
  s.decay = (float)((1.0 - (dlr * dwd)));
  return s;
}

/**
 * Sums the per-thread partial gradients, adds the penalty gradient, and takes
 * the optimizer step (rules from src/train/rules.ts, printed through cArith).
 * Returns this thread's share of the penalty loss (pre-step weights).
 */
double update(tk_net* m, const Ctx& c, const StepScalars& s) {
  double pen = 0.0;
  for (int i = 0; i < NUM_PARAMS; ++i) {
    int lo, hi;
    tk::slice((int)PARAM_NUMEL[i], c.t, c.nt, lo, hi);
    float* P = m->P + PARAM_OFF[i];
    float* G = m->G + PARAM_OFF[i];
    float* M = m->M + PARAM_OFF[i];
    float* V = m->V + PARAM_OFF[i];
    const size_t go = GPO(i);
    for (int j = lo; j < hi; ++j) {
      float graw = 0.0f;
      for (int t = 0; t < c.nt; ++t) {
        const float* gp = m->GP + (size_t)t * GP_FLOATS + go;
        if (PARAM_VEC[i]) {
          for (int l = 0; l < tk::VW; ++l) graw += gp[(size_t)j * tk::VW + l];
        } else {
          graw += gp[j];
        }
      }
      const float p = P[j];
      pen += (double)(((s.l1 * ((float)((p > 0.0f) - (p < 0.0f)) * p)) + (s.l2 * (p * p))));
      const float g = graw + ((s.l1 * (float)((p > 0.0f) - (p < 0.0f))) + ((2.0f * s.l2) * p));
      G[j] = g;
      if (s.kind == TK_OPT_SGD) {
        const float buf = M[j];
        (void)buf;
        M[j] = (s.first ? (g + (s.wd * p)) : ((s.momentum * buf) + (g + (s.wd * p))));
        P[j] = (p - (s.lr * (s.nesterov ? ((g + (s.wd * p)) + (s.momentum * M[j])) : M[j])));
      } else {
        const float mv = M[j], vv = V[j];
        (void)mv; (void)vv;
        M[j] = ((mv * s.beta1) + ((s.decoupled ? g : (g + (s.wd * p))) * s.omb1));
        V[j] = ((vv * s.beta2) + (((s.decoupled ? g : (g + (s.wd * p))) * (s.decoupled ? g : (g + (s.wd * p)))) * s.omb2));
        P[j] = ((s.decoupled ? (p * s.decay) : p) - (s.step_size * (M[j] / ((sqrtf(V[j]) / s.bc2_sqrt) + s.eps))));
      }
    }
  }
  return pen;
}

int train_impl(tk_net* m, const float* x, const int32_t* labels, int B, const tk_sgd_options* o, uint32_t seed,
               tk_step_result* res, float* logits) {
  double lsum[MAX_THREADS] = {0}, pen[MAX_THREADS] = {0};
  int64_t ok[MAX_THREADS] = {0};
  const StepScalars s = step_scalars(m, o);
  const int nt = B >= 2 ? m->nthreads : 1;
  int used = 1;
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    const Ctx c = make_ctx(m, B, seed, 1);
    if (c.t == 0) used = c.nt;
    memset(c.gp, 0, GP_FLOATS * sizeof(float));
    fwd_steps(m, c, x);
    
    tk::ce_loss<CLASSES>(c, dlogits_buf(m), logits_buf(m), labels, o->label_smoothing, o->loss_kind, &lsum[c.t], &ok[c.t]);
    if (logits)
      memcpy(logits + (size_t)c.b0 * CLASSES, logits_buf(m) + (size_t)c.b0 * CLASSES, sizeof(float) * (c.b1 - c.b0) * CLASSES);
    bwd_steps(m, c, x);
    TK_BARRIER();
    pen[c.t] = update(m, c, s);
  }
  double l = 0.0, p = 0.0;
  int64_t k = 0;
  for (int t = 0; t < used; ++t) l += lsum[t], p += pen[t], k += ok[t];
  if (o->optimizer == TK_OPT_SGD && o->momentum != 0.0f) m->has_momentum = 1;
  if (o->optimizer != TK_OPT_SGD) m->adam_steps++;
  m->last_batch = B;
  m->last_fwd = B;
  if (res) {
    res->loss = (float)(l / B + p);
    res->loss_ce = (float)(l / B);
    res->correct = (int)k;
  }
  return TK_OK;
}

int check_labels(tk_net* m, const int32_t* labels, int B) {
  for (int b = 0; b < B; ++b)
    if (labels[b] < 0 || labels[b] >= CLASSES)
      return fail(m, "label %ld at index %ld is out of range [0, %ld)", labels[b], b, CLASSES);
  return TK_OK;
}

}  // namespace

extern "C" {

tk_net* tk_net_create(int max_batch) {
  if (max_batch <= 0) max_batch = 256;
  tk_net* m = (tk_net*)calloc(1, sizeof(tk_net));
  if (!m) return nullptr;
  m->max_batch = max_batch;
#ifdef _OPENMP
  m->nthreads = omp_get_max_threads();
#else
  m->nthreads = 1;
#endif
  if (m->nthreads > MAX_THREADS) m->nthreads = MAX_THREADS;
  if (m->nthreads < 1) m->nthreads = 1;
  m->training = 1;
  const size_t mb = (size_t)max_batch;
  m->scratch_stride = (scratch_floats(mb) + 15) / 16 * 16;
  const size_t sizes[NUM_BUFFERS] = {
      ARENA_BYTES_PER_SAMPLE * mb + 64,           sizeof(float) * (PARAM_FLOATS + 16),
      sizeof(float) * (PARAM_FLOATS + 16),        sizeof(float) * (PARAM_FLOATS + 16),
      sizeof(float) * (FBUF_FLOATS + 16),         sizeof(int64_t) * (IBUF_COUNT + 8),
      sizeof(float) * (GP_FLOATS + 16) * MAX_THREADS, sizeof(float) * m->scratch_stride * MAX_THREADS,
      sizeof(double) * (RED_PER_THREAD * MAX_THREADS + 8), sizeof(float) * IN_NUMEL * mb,
      sizeof(int32_t) * mb,                       sizeof(float) * (PARAM_FLOATS + 16),
  };
  void* b[NUM_BUFFERS];
  if (!alloc_buffers(m, sizes, b)) {
    free_buffers(m);
    free(m);
    return nullptr;
  }
  m->arena = (char*)b[0];
  m->P = (float*)b[1];
  m->G = (float*)b[2];
  m->M = (float*)b[3];
  m->FB = (float*)b[4];
  m->IB = (int64_t*)b[5];
  m->GP = (float*)b[6];
  m->scratch = (float*)b[7];
  m->red = (double*)b[8];
  m->xb = (float*)b[9];
  m->lb = (int32_t*)b[10];
  m->V = (float*)b[11];
  return m;
}

void tk_net_destroy(tk_net* m) {
  if (!m) return;
  for (int k = 0; k < NUM_DROPOUT; ++k) free(m->dmask[k]);  // replayed masks: allocated when given
  free_buffers(m);
  free(m);
}

const char* tk_net_last_error(const tk_net* m) { return m ? m->err : "no model"; }
size_t tk_net_memory_bytes(const tk_net* m) { return m ? m->bytes : 0; }
int tk_net_max_batch(const tk_net* m) { return m->max_batch; }
const char* tk_net_isa(void) {
#if defined(__AVX512F__)
  return "avx512";
#elif defined(__AVX2__)
  return "avx2";
#elif defined(__AVX__)
  return "avx";
#else
  return "generic";
#endif
}
int tk_net_num_threads(const tk_net* m) { return m->nthreads; }
void tk_net_set_num_threads(tk_net* m, int n) { m->nthreads = n < 1 ? 1 : n > MAX_THREADS ? MAX_THREADS : n; }
void tk_net_set_training(tk_net* m, int training) { m->training = training ? 1 : 0; }
int tk_net_training(const tk_net* m) { return m->training; }
uint32_t tk_net_step_seed(uint32_t base_seed, uint64_t step) { return tk::step_seed(base_seed, step); }

int tk_net_forward(tk_net* m, const float* x, int B, float* logits, uint32_t seed) {
  if (!m) return TK_EINVAL;
  if (!x || !logits) return fail(m, "forward: x and logits must not be NULL");
  if (check_batch(m, B)) return TK_EINVAL;
  const int nt = B >= 2 ? m->nthreads : 1;
  const int train = m->training;
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    const Ctx c = make_ctx(m, B, seed, train);
    fwd_steps(m, c, x);
    memcpy(logits + (size_t)c.b0 * CLASSES, logits_buf(m) + (size_t)c.b0 * CLASSES, sizeof(float) * (c.b1 - c.b0) * CLASSES);
  }
  m->last_fwd = B;
  return TK_OK;
}

int tk_net_input_gradient(tk_net* m, const float* x, const int32_t* labels, int B, int train, uint32_t seed, int loss_kind,
                              float label_smoothing, float* dst, float* logits, float* loss) {
  if (!m) return TK_EINVAL;
  if (!x || !labels || !dst) return fail(m, "input_gradient: x, labels and dst must not be NULL");
  if (!input_grad_buf(m)) return fail(m, "input_gradient: this package was built without input gradients (build it with inputGrad)");
  tk_sgd_options o = {};
  o.loss_kind = loss_kind;
  o.label_smoothing = label_smoothing;
  if (check_batch(m, B) || check_opts(m, &o) || check_labels(m, labels, B)) return TK_EINVAL;
  // train mode updates the BatchNorm buffers: they are put back, as the weights are never touched
  const size_t fb = sizeof(float) * FBUF_FLOATS, ib = sizeof(int64_t) * IBUF_COUNT;
  char* saved = train ? (char*)malloc(fb + ib + 8) : nullptr;
  if (train && !saved) return TK_ENOMEM;
  if (saved) memcpy(saved, m->FB, fb), memcpy(saved + fb, m->IB, ib);
  double lsum[MAX_THREADS] = {0};
  int64_t ok[MAX_THREADS] = {0};
  const int nt = B >= 2 ? m->nthreads : 1;
  int used = 1;
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    const Ctx c = make_ctx(m, B, seed, train ? 1 : 0);
    if (c.t == 0) used = c.nt;
    fwd_steps(m, c, x);
    
    tk::ce_loss<CLASSES>(c, dlogits_buf(m), logits_buf(m), labels, o.label_smoothing, o.loss_kind, &lsum[c.t], &ok[c.t]);
    if (logits)
      memcpy(logits + (size_t)c.b0 * CLASSES, logits_buf(m) + (size_t)c.b0 * CLASSES, sizeof(float) * (c.b1 - c.b0) * CLASSES);
    bwd_steps(m, c, x);
  }
  if (saved) memcpy(m->FB, saved, fb), memcpy(m->IB, saved + fb, ib), free(saved);
  double l = 0.0;
  for (int t = 0; t < used; ++t) l += lsum[t];
  if (loss) *loss = (float)(l / B);
  memcpy(dst, input_grad_buf(m), sizeof(float) * (size_t)B * IN_NUMEL);
  m->last_batch = B;
  m->last_fwd = B;
  return TK_OK;
}

int tk_net_num_taps(void) { return NUM_TAPS; }
const tk_tap_info* tk_net_tap_info(int i) { return i >= 0 && i < NUM_TAPS ? &TAPS[i] : nullptr; }

int tk_net_tap(tk_net* m, int i, const float* x, float* dst, int batch) {
  if (!m || !dst) return TK_EINVAL;
  if (i < 0 || i >= NUM_TAPS) return fail(m, "tap: no tap %ld (this package has %ld; gen build --taps adds them)", i, NUM_TAPS);
  if (batch < 1 || batch != m->last_fwd) return fail(m, "tap: the last forward had batch %ld, not %ld", m->last_fwd, batch);
  const size_t n = (size_t)batch * TAPS[i].numel;
  if (TAP_OFF[i] < 0) {
    if (!x) return fail(m, "tap %ld is the model input: pass the x of the forward", i);
    memcpy(dst, x, sizeof(float) * n);
    return TK_OK;
  }
  char* const arena = m->arena;
  const size_t mb = (size_t)m->max_batch;
  memcpy(dst, F(TAP_OFF[i]), sizeof(float) * n);
  return TK_OK;
}

int tk_net_train_step(tk_net* m, const float* x, const int32_t* labels, int B, const tk_sgd_options* o,
                          uint32_t seed, tk_step_result* res, float* logits) {
  if (!m) return TK_EINVAL;
  if (!x || !labels) return fail(m, "train_step: x and labels must not be NULL");
  if (check_batch(m, B) || check_opts(m, o) || check_labels(m, labels, B)) return TK_EINVAL;
  return train_impl(m, x, labels, B, o, seed, res, logits);
}

/**
 * Sample b of a step seeded `seed`, cropped and flipped as augmentSample of
 * src/data/augment.ts: window offset (dy, dx) in [0, 2p] of the image padded by p,
 * mirrored when the flip draw is 1; fill[c] outside the image.
 */
static void augment_sample(const tk_net* m, const float* src, float* dst, uint32_t seed, uint32_t b) {
  const int p = m->aug_crop;
  const uint32_t span = (uint32_t)(2 * p + 1);
  const int oy = p ? (int)tk::hash_below(seed, AUGMENT_STREAM, 3 * b, span) - p : 0;
  const int ox = p ? (int)tk::hash_below(seed, AUGMENT_STREAM, 3 * b + 1, span) - p : 0;
  const bool flip = m->aug_flip && tk::hash_below(seed, AUGMENT_STREAM, 3 * b + 2, 2) == 1;
  for (int c = 0; c < IN_C; ++c)
    for (int y = 0; y < IN_H; ++y) {
      const int sy = y + oy;
      float* d = dst + ((size_t)c * IN_H + y) * IN_W;
      const float fill = m->aug_fill[c];
      if (sy < 0 || sy >= IN_H) {
        for (int x = 0; x < IN_W; ++x) d[x] = fill;
        continue;
      }
      const float* s = src + ((size_t)c * IN_H + sy) * IN_W;
      for (int x = 0; x < IN_W; ++x) {
        const int sx = (flip ? IN_W - 1 - x : x) + ox;
        d[x] = sx >= 0 && sx < IN_W ? s[sx] : fill;
      }
    }
}

int tk_net_set_augment(tk_net* m, int crop_padding, int flip, const float* fill) {
  if (!m) return TK_EINVAL;
  if (crop_padding < 0 || crop_padding > MAX_CROP_PADDING)
    return fail(m, "augment crop padding must be in [0, %ld], got %ld", (long)MAX_CROP_PADDING, crop_padding);
  if (crop_padding > 0 && !fill) return fail(m, "augment: a crop needs the fill values (one per channel)");
  for (int c = 0; c < IN_C && fill; ++c)
    if (!isfinite(fill[c])) return fail(m, "augment fill[%ld] must be finite", c);
  m->aug_crop = crop_padding;
  m->aug_flip = flip ? 1 : 0;
  for (int c = 0; c < IN_C; ++c) m->aug_fill[c] = fill ? fill[c] : 0.0f;
  return TK_OK;
}

int tk_net_train_epoch(tk_net* m, const float* x, const int32_t* labels, int n, const uint32_t* order, int n_order,
                          int batch_size, const tk_sgd_options* o, uint32_t base_seed, uint64_t first_step,
                          double* loss_sum, int64_t* correct) {
  if (!m) return TK_EINVAL;
  if (!x || !labels || !order) return fail(m, "train_epoch: x, labels and order must not be NULL");
  if (n < 1) return fail(m, "train_epoch: n must be >= 1, got %ld", n);
  if (n_order < 0) return fail(m, "train_epoch: n_order must be >= 0, got %ld", n_order);
  if (check_batch(m, batch_size) || check_opts(m, o)) return TK_EINVAL;
  for (int i = 0; i < n_order; ++i)
    if (order[i] >= (uint32_t)n) return fail(m, "train_epoch: order[%ld] = %ld is not below n = %ld", i, (long)order[i], n);
  for (int i = 0; i < n_order; ++i)
    if (labels[order[i]] < 0 || labels[order[i]] >= CLASSES)
      return fail(m, "label %ld at index %ld is out of range [0, %ld)", labels[order[i]], (long)order[i], CLASSES);
  const int n_steps = (n_order + batch_size - 1) / batch_size;
  for (int i = 0; i < n_steps; ++i) {
    if (o->lr_steps && !isfinite(o->lr_steps[i])) return fail(m, "train_epoch: lr_steps[%ld] is not a finite number", i);
    if (o->momentum_steps && !(o->momentum_steps[i] >= 0.0 && o->momentum_steps[i] < 1.0))
      return fail(m, "train_epoch: momentum_steps[%ld] is not in [0, 1)", i);
  }
  double ls = 0.0;
  int64_t ok = 0;
  uint64_t step = first_step;
  tk_sgd_options os = *o;
  for (int s0 = 0, i = 0; s0 < n_order; s0 += batch_size, ++i) {
    if (o->lr_steps) os.lr = (float)o->lr_steps[i];
    if (o->momentum_steps) (o->optimizer == TK_OPT_SGD ? (void)(os.momentum = (float)o->momentum_steps[i]) : (void)(os.beta1 = o->momentum_steps[i]));
    const int B = n_order - s0 < batch_size ? n_order - s0 : batch_size;
    const uint32_t seed = tk::step_seed(base_seed, step++);
    const bool aug = m->aug_crop > 0 || m->aug_flip;
    for (int b = 0; b < B; ++b) {
      const uint32_t k = order[s0 + b];
      const float* src = x + (size_t)k * IN_NUMEL;
      float* dst = m->xb + (size_t)b * IN_NUMEL;
      if (aug) augment_sample(m, src, dst, seed, (uint32_t)b);
      else memcpy(dst, src, sizeof(float) * IN_NUMEL);
      m->lb[b] = labels[k];
    }
    tk_step_result r = { 0.0f, 0.0f, 0 };
    train_impl(m, m->xb, m->lb, B, &os, seed, &r, nullptr);
    ls += r.loss;
    ok += r.correct;
  }
  if (loss_sum) *loss_sum += ls;
  if (correct) *correct += ok;
  return TK_OK;
}

int tk_net_num_state(void) { return NUM_STATE; }
const tk_state_info* tk_net_state_info(int i) { return i >= 0 && i < NUM_STATE ? &STATE[i] : nullptr; }

void* tk_net_state_data(tk_net* m, int i) {
  if (!m || i < 0 || i >= NUM_STATE) return nullptr;
  switch (STATE_WHERE[i]) {
    case 0: return m->P + STATE_OFF[i];
    case 1: return m->FB + STATE_OFF[i];
    default: return m->IB + STATE_OFF[i];
  }
}

int tk_net_num_dropout(void) { return NUM_DROPOUT; }

int tk_net_set_dropout_mask(tk_net* m, int k, const float* mask, int batch) {
  if (!m) return TK_EINVAL;
  if (k < 0 || k >= NUM_DROPOUT) return fail(m, "set_dropout_mask: dropout %ld is outside 0..%ld", k, NUM_DROPOUT - 1);
  if (!mask) {
    free(m->dmask[k]);
    m->dmask[k] = nullptr;
    return TK_OK;
  }
  if (int r = check_batch(m, batch)) return r;
  if (!m->dmask[k]) m->dmask[k] = (float*)calloc((size_t)m->max_batch * DROPOUT_NUMEL[k], sizeof(float));
  if (!m->dmask[k]) return TK_ENOMEM;
  memcpy(m->dmask[k], mask, sizeof(float) * (size_t)batch * DROPOUT_NUMEL[k]);
  return TK_OK;
}

int tk_net_input_grad(tk_net* m, float* dst, int batch) {
  if (!m || !dst) return TK_EINVAL;
  const float* g = input_grad_buf(m);
  if (!g) return fail(m, "input_grad: this package was built without input gradients (build it with inputGrad)");
  if (batch != m->last_batch || batch < 1) return fail(m, "input_grad: the last train step had batch %ld, not %ld", m->last_batch, batch);
  memcpy(dst, g, sizeof(float) * (size_t)batch * IN_NUMEL);
  return TK_OK;
}

const float* tk_net_grad_data(tk_net* m, int i) {
  if (!m || i < 0 || i >= NUM_STATE || STATE_WHERE[i] != 0) return nullptr;
  return m->G + STATE_OFF[i];
}

int tk_net_get_state(tk_net* m, int i, void* dst) {
  if (!m) return TK_EINVAL;
  void* p = tk_net_state_data(m, i);
  if (!p || !dst) return fail(m, "get_state: no state %ld", i);
  memcpy(dst, p, STATE[i].numel * (STATE[i].dtype == TK_I64 ? 8 : 4));
  return TK_OK;
}

int tk_net_set_state(tk_net* m, int i, const void* src) {
  if (!m) return TK_EINVAL;
  void* p = tk_net_state_data(m, i);
  if (!p || !src) return fail(m, "set_state: no state %ld", i);
  memcpy(p, src, STATE[i].numel * (STATE[i].dtype == TK_I64 ? 8 : 4));
  return TK_OK;
}

float* tk_net_momentum_data(tk_net* m, int i) {
  if (!m || i < 0 || i >= NUM_STATE || STATE_WHERE[i] != 0) return nullptr;
  return m->M + STATE_OFF[i];
}
int tk_net_has_momentum(const tk_net* m) { return m ? m->has_momentum : 0; }

int tk_net_set_has_momentum(tk_net* m, int has) {
  if (!m) return TK_EINVAL;
  m->has_momentum = has ? 1 : 0;
  return TK_OK;
}

int tk_net_get_grad(tk_net* m, int i, float* dst) {
  if (!m) return TK_EINVAL;
  const float* g = tk_net_grad_data(m, i);
  if (!g || !dst) return fail(m, "get_grad: %ld is not a parameter index (or dst is NULL)", i);
  memcpy(dst, g, sizeof(float) * STATE[i].numel);
  return TK_OK;
}

int tk_net_get_momentum(tk_net* m, int i, float* dst) { return tk_net_get_opt_state(m, 0, i, dst); }
int tk_net_set_momentum(tk_net* m, int i, const float* src) { return tk_net_set_opt_state(m, 0, i, src); }

int tk_net_get_opt_state(tk_net* m, int slot, int i, float* dst) {
  if (!m) return TK_EINVAL;
  if (!dst || slot < 0 || slot > 1 || i < 0 || i >= NUM_STATE || STATE_WHERE[i] != 0) return fail(m, "get_opt_state: no slot %ld of parameter %ld", slot, i);
  memcpy(dst, (slot ? m->V : m->M) + STATE_OFF[i], sizeof(float) * STATE[i].numel);
  return TK_OK;
}

int tk_net_set_opt_state(tk_net* m, int slot, int i, const float* src) {
  if (!m) return TK_EINVAL;
  if (!src || slot < 0 || slot > 1 || i < 0 || i >= NUM_STATE || STATE_WHERE[i] != 0) return fail(m, "set_opt_state: no slot %ld of parameter %ld", slot, i);
  memcpy((slot ? m->V : m->M) + STATE_OFF[i], src, sizeof(float) * STATE[i].numel);
  return TK_OK;
}

int64_t tk_net_adam_steps(tk_net* m) { return m ? m->adam_steps : 0; }

int tk_net_set_adam_steps(tk_net* m, int64_t t) {
  if (!m) return TK_EINVAL;
  if (t < 0) return fail(m, "set_adam_steps: t must be >= 0");
  m->adam_steps = t;
  return TK_OK;
}

void tk_net_reset_optimizer(tk_net* m) {
  m->has_momentum = 0;
  m->adam_steps = 0;
  memset(m->M, 0, sizeof(float) * PARAM_FLOATS);
  memset(m->V, 0, sizeof(float) * PARAM_FLOATS);
}

}  // extern "C"
