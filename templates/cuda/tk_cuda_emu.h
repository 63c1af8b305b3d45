// tk_cuda_emu.h — a small CPU emulator of the CUDA subset that tensorkiln's
// generated kernels use, so that the generated .cu files can be compiled with
// g++ and RUN on a machine without a GPU (tests, CI):
//
//   g++ -x c++ -DTK_CUDA_EMU -I<dir of this header> model_cuda.cu ...
//
// Blocks run one after another; the threads of a block run as cooperative
// fibers (ucontext) that switch only at barriers, so __syncthreads and the
// warp shuffles have their real semantics. TK_EMU_REVERSE=1 runs the threads
// of each block (and the blocks) in reverse order, which exposes a missing
// barrier. TK_EMU_DEVICES=0 makes cudaGetDeviceCount report no device, to test
// the "no GPU" error path. Stream capture records launches and replays them
// on cudaGraphLaunch, like a CUDA graph (arguments captured by value).
// Not emulated: concurrency between blocks (generated code must not rely on it).
#pragma once
#ifndef TK_CUDA_EMU
#error "tk_cuda_emu.h is only for -DTK_CUDA_EMU builds"
#endif
// _longjmp between fiber stacks must not go through glibc's fortified longjmp check
#ifdef _FORTIFY_SOURCE
#undef _FORTIFY_SOURCE
#endif
#include <setjmp.h>
#include <ucontext.h>

#include <math.h>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static
#define __align__(n) alignas(n)

struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct uint3 { unsigned x, y, z; };
struct alignas(16) float4 { float x, y, z, w; };
struct alignas(8) float2 { float x, y; };

inline dim3 threadIdx, blockIdx, blockDim, gridDim;
constexpr int warpSize = 32;

typedef int cudaError_t;
enum : int {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorNoDevice = 100,
  cudaErrorInvalidDevice = 101,
  cudaErrorLaunchFailure = 719,
  cudaErrorStreamCaptureInvalidated = 901,
};
enum cudaMemcpyKind { cudaMemcpyHostToHost, cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost, cudaMemcpyDeviceToDevice, cudaMemcpyDefault };
enum cudaStreamCaptureMode { cudaStreamCaptureModeGlobal, cudaStreamCaptureModeThreadLocal, cudaStreamCaptureModeRelaxed };
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize };
#define cudaStreamNonBlocking 1u

struct tkemu_stream { int capturing = 0; struct tkemu_graph* graph = nullptr; };
struct tkemu_graph { std::vector<std::function<void()>> ops; };
struct tkemu_event { int dummy = 0; };
typedef tkemu_stream* cudaStream_t;
typedef tkemu_graph* cudaGraph_t;
typedef tkemu_graph* cudaGraphExec_t;
typedef tkemu_event* cudaEvent_t;

struct cudaDeviceProp {
  char name[256];
  int major, minor, multiProcessorCount;
  size_t totalGlobalMem, sharedMemPerBlock;
};

namespace tkemu {

inline cudaError_t& last_error() {
  static cudaError_t e = cudaSuccess;
  return e;
}
inline bool reverse_order() {
  static int r = -1;
  if (r < 0) { const char* s = std::getenv("TK_EMU_REVERSE"); r = (s && *s && *s != '0') ? 1 : 0; }
  return r == 1;
}
inline int device_count() {
  const char* s = std::getenv("TK_EMU_DEVICES");
  return s ? std::atoi(s) : 1;
}

// ---------------------------------------------------------------- fibers
enum State { Runnable, AtBlockBarrier, AtWarpBarrier, Done };
struct Fiber {
  ucontext_t ctx;      // first entry only (makecontext)
  jmp_buf jb;          // later switches: _setjmp/_longjmp, no signal-mask system call
  bool started = false;
  std::unique_ptr<char[]> stack;
  State state = Runnable;
  dim3 tid;
};
struct BlockRun {
  std::vector<Fiber> fibers;
  ucontext_t sched;
  jmp_buf sched_jb;
  int current = -1;
  const std::function<void()>* body = nullptr;
  // warp shuffle exchange slots, 8 bytes per lane
  std::vector<uint64_t> slots;
};
inline BlockRun*& run() {
  static BlockRun* r = nullptr;
  return r;
}
constexpr size_t kStack = 256 * 1024;

inline void trampoline() {
  BlockRun* r = run();
  (*r->body)();
  r->fibers[r->current].state = Done;
  _longjmp(r->sched_jb, 1);
}

inline void yield_with(State s) {
  BlockRun* r = run();
  if (!r) { std::fprintf(stderr, "tk_cuda_emu: barrier outside a kernel\n"); std::abort(); }
  Fiber& f = r->fibers[r->current];
  f.state = s;
  if (!_setjmp(f.jb)) _longjmp(r->sched_jb, 1);
  threadIdx = r->fibers[r->current].tid;
}

// Runs fiber t until it waits at a barrier or ends.
inline void resume(BlockRun& r, Fiber& f) {
  if (_setjmp(r.sched_jb)) return;
  if (!f.started) {
    f.started = true;
    setcontext(&f.ctx);
  }
  _longjmp(f.jb, 1);
}

inline void run_block(BlockRun& r, unsigned nthreads) {
  const bool rev = reverse_order();
  const unsigned nwarps = (nthreads + 31) / 32;
  for (;;) {
    bool any = false;
    for (unsigned k = 0; k < nthreads; k++) {
      unsigned t = rev ? nthreads - 1 - k : k;
      Fiber& f = r.fibers[t];
      if (f.state != Runnable) continue;
      any = true;
      r.current = (int)t;
      threadIdx = f.tid;
      resume(r, f);
    }
    (void)any;
    // release barriers
    unsigned live = 0, atBlock = 0;
    for (auto& f : r.fibers) {
      if (f.state != Done) live++;
      if (f.state == AtBlockBarrier) atBlock++;
    }
    if (live == 0) return;
    bool released = false;
    for (unsigned w = 0; w < nwarps; w++) {
      unsigned wl = 0, ww = 0;
      for (unsigned t = w * 32; t < nthreads && t < w * 32 + 32; t++) {
        if (r.fibers[t].state != Done) wl++;
        if (r.fibers[t].state == AtWarpBarrier) ww++;
      }
      if (wl > 0 && ww == wl) {
        for (unsigned t = w * 32; t < nthreads && t < w * 32 + 32; t++) r.fibers[t].state = Runnable;
        released = true;
      }
    }
    if (!released && atBlock == live) {
      for (auto& f : r.fibers)
        if (f.state == AtBlockBarrier) f.state = Runnable;
      released = true;
    }
    if (!released) {
      std::fprintf(stderr, "tk_cuda_emu: deadlock: threads wait at different barriers (block %u,%u,%u)\n", blockIdx.x, blockIdx.y, blockIdx.z);
      std::abort();
    }
  }
}

inline void execute(dim3 grid, dim3 block, const std::function<void()>& body) {
  unsigned nthreads = block.x * block.y * block.z;
  if (nthreads == 0 || nthreads > 1024 || grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.y > 65535 || grid.z > 65535) {
    std::fprintf(stderr, "tk_cuda_emu: invalid launch configuration grid(%u,%u,%u) block(%u,%u,%u)\n", grid.x, grid.y, grid.z, block.x, block.y, block.z);
    last_error() = cudaErrorInvalidConfiguration;
    return;
  }
  static std::vector<std::unique_ptr<char[]>> stacks;
  while (stacks.size() < nthreads) stacks.emplace_back(new char[kStack]);
  BlockRun r;
  r.body = &body;
  r.fibers.resize(nthreads);
  r.slots.assign(nthreads, 0);
  gridDim = grid;
  blockDim = block;
  run() = &r;
  const bool rev = reverse_order();
  const unsigned long nblocks = (unsigned long)grid.x * grid.y * grid.z;
  for (unsigned long k = 0; k < nblocks; k++) {
    unsigned long b = rev ? nblocks - 1 - k : k;
    blockIdx = dim3((unsigned)(b % grid.x), (unsigned)((b / grid.x) % grid.y), (unsigned)(b / ((unsigned long)grid.x * grid.y)));
    for (unsigned t = 0; t < nthreads; t++) {
      Fiber& f = r.fibers[t];
      f.state = Runnable;
      f.started = false;
      f.tid = dim3(t % block.x, (t / block.x) % block.y, t / (block.x * block.y));
      getcontext(&f.ctx);
      f.ctx.uc_stack.ss_sp = stacks[t].get();
      f.ctx.uc_stack.ss_size = kStack;
      f.ctx.uc_link = nullptr;
      makecontext(&f.ctx, trampoline, 0);
    }
    run_block(r, nthreads);
  }
  run() = nullptr;
}

inline void submit(cudaStream_t s, std::function<void()> op) {
  if (s && s->capturing) s->graph->ops.push_back(std::move(op));
  else op();
}

inline void launch(dim3 grid, dim3 block, cudaStream_t s, std::function<void()> body) {
  submit(s, [grid, block, body]() { execute(grid, block, body); });
}

inline unsigned lane_id() { return (threadIdx.x + threadIdx.y * blockDim.x + threadIdx.z * blockDim.x * blockDim.y) % 32; }
inline unsigned flat_tid() { return threadIdx.x + threadIdx.y * blockDim.x + threadIdx.z * blockDim.x * blockDim.y; }

template <typename T>
T shfl(T v, int srcLaneInWarp) {
  static_assert(sizeof(T) <= 8, "shfl of a type over 8 bytes");
  BlockRun* r = run();
  unsigned t = flat_tid();
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  r->slots[t] = bits;
  yield_with(AtWarpBarrier);
  unsigned src = (t / 32) * 32 + (unsigned)(srcLaneInWarp & 31);
  uint64_t got = src < r->slots.size() ? r->slots[src] : bits;
  T out;
  std::memcpy(&out, &got, sizeof(T));
  yield_with(AtWarpBarrier);
  return out;
}

}  // namespace tkemu

inline void __syncthreads() { tkemu::yield_with(tkemu::AtBlockBarrier); }
inline void __syncwarp(unsigned = 0xffffffffu) { tkemu::yield_with(tkemu::AtWarpBarrier); }
inline void __threadfence() {}
template <typename T> T __shfl_xor_sync(unsigned, T v, int m, int = 32) { return tkemu::shfl(v, (int)(tkemu::lane_id() ^ (unsigned)m)); }
template <typename T> T __shfl_down_sync(unsigned, T v, int d, int = 32) {
  unsigned l = tkemu::lane_id();
  return tkemu::shfl(v, (int)(l + (unsigned)d < 32 ? l + (unsigned)d : l));
}
template <typename T> T __shfl_sync(unsigned, T v, int src, int = 32) { return tkemu::shfl(v, src); }
template <typename T> T __ldg(const T* p) { return *p; }
inline float atomicAdd(float* p, float v) { float o = *p; *p += v; return o; }
inline double atomicAdd(double* p, double v) { double o = *p; *p += v; return o; }
inline int atomicAdd(int* p, int v) { int o = *p; *p += v; return o; }
inline unsigned atomicAdd(unsigned* p, unsigned v) { unsigned o = *p; *p += v; return o; }
inline unsigned long long atomicAdd(unsigned long long* p, unsigned long long v) { unsigned long long o = *p; *p += v; return o; }
inline unsigned atomicInc(unsigned* p, unsigned m) { unsigned o = *p; *p = (o >= m) ? 0 : o + 1; return o; }
inline float __fdividef(float a, float b) { return a / b; }
inline float __expf(float a) { return std::exp(a); }
inline float __logf(float a) { return std::log(a); }
inline float rsqrtf(float a) { return 1.0f / std::sqrt(a); }
inline double rsqrt(double a) { return 1.0 / std::sqrt(a); }
using std::isnan;
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }

// ---------------------------------------------------------------- runtime API
inline const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidValue: return "invalid argument";
    default: return "unknown error";
  }
}
inline const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    default: return "cudaErrorUnknown";
  }
}
inline cudaError_t cudaGetLastError() { cudaError_t e = tkemu::last_error(); tkemu::last_error() = cudaSuccess; return e; }
inline cudaError_t cudaPeekAtLastError() { return tkemu::last_error(); }
inline cudaError_t cudaGetDeviceCount(int* n) {
  *n = tkemu::device_count();
  return *n > 0 ? cudaSuccess : cudaErrorNoDevice;
}
inline cudaError_t cudaSetDevice(int d) { return (d >= 0 && d < tkemu::device_count()) ? cudaSuccess : (tkemu::device_count() ? cudaErrorInvalidDevice : cudaErrorNoDevice); }
inline cudaError_t cudaGetDevice(int* d) { *d = 0; return cudaSuccess; }
inline cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int d) {
  if (d < 0 || d >= tkemu::device_count()) return cudaErrorInvalidDevice;
  std::memset(p, 0, sizeof *p);
  std::snprintf(p->name, sizeof p->name, "tk_cuda_emu (CPU emulation)");
  p->major = 9; p->minor = 0; p->multiProcessorCount = 4; p->totalGlobalMem = size_t(1) << 32; p->sharedMemPerBlock = 48 * 1024;
  return cudaSuccess;
}
inline cudaError_t cudaDeviceSynchronize() { return tkemu::last_error(); }
inline cudaError_t cudaMalloc(void** p, size_t n) {
  *p = std::aligned_alloc(256, ((n + 255) / 256) * 256 + 256);
  if (!*p) return cudaErrorMemoryAllocation;
  // poison: generated code must not read memory it has not written
  std::memset(*p, 0xff, ((n + 255) / 256) * 256);
  return cudaSuccess;
}
template <typename T> cudaError_t cudaMalloc(T** p, size_t n) { return cudaMalloc(reinterpret_cast<void**>(p), n); }
inline cudaError_t cudaFree(void* p) { std::free(p); return cudaSuccess; }
inline cudaError_t cudaMallocHost(void** p, size_t n) { *p = std::malloc(n ? n : 1); return *p ? cudaSuccess : cudaErrorMemoryAllocation; }
template <typename T> cudaError_t cudaMallocHost(T** p, size_t n) { return cudaMallocHost(reinterpret_cast<void**>(p), n); }
inline cudaError_t cudaFreeHost(void* p) { std::free(p); return cudaSuccess; }
inline cudaError_t cudaMemcpy(void* d, const void* s, size_t n, cudaMemcpyKind) { if (n) std::memmove(d, s, n); return cudaSuccess; }
inline cudaError_t cudaMemcpyAsync(void* d, const void* s, size_t n, cudaMemcpyKind, cudaStream_t st = nullptr) {
  tkemu::submit(st, [d, s, n]() { if (n) std::memmove(d, s, n); });
  return cudaSuccess;
}
inline cudaError_t cudaMemset(void* d, int v, size_t n) { std::memset(d, v, n); return cudaSuccess; }
inline cudaError_t cudaMemsetAsync(void* d, int v, size_t n, cudaStream_t st = nullptr) {
  tkemu::submit(st, [d, v, n]() { std::memset(d, v, n); });
  return cudaSuccess;
}
inline cudaError_t cudaStreamCreate(cudaStream_t* s) { *s = new tkemu_stream(); return cudaSuccess; }
inline cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned) { return cudaStreamCreate(s); }
inline cudaError_t cudaStreamDestroy(cudaStream_t s) { delete s; return cudaSuccess; }
inline cudaError_t cudaStreamSynchronize(cudaStream_t) { return tkemu::last_error(); }
inline cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode) {
  if (!s || s->capturing) return cudaErrorInvalidValue;
  s->capturing = 1;
  s->graph = new tkemu_graph();
  return cudaSuccess;
}
inline cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t* g) {
  if (!s || !s->capturing) return cudaErrorInvalidValue;
  s->capturing = 0;
  *g = s->graph;
  s->graph = nullptr;
  return cudaSuccess;
}
inline cudaError_t cudaGraphInstantiate(cudaGraphExec_t* e, cudaGraph_t g, unsigned long long = 0) { *e = new tkemu_graph(*g); return cudaSuccess; }
inline cudaError_t cudaGraphLaunch(cudaGraphExec_t e, cudaStream_t s) {
  if (s && s->capturing) return cudaErrorInvalidValue;
  for (auto& op : e->ops) op();
  return tkemu::last_error();
}
inline cudaError_t cudaGraphDestroy(cudaGraph_t g) { delete g; return cudaSuccess; }
inline cudaError_t cudaGraphExecDestroy(cudaGraphExec_t e) { delete e; return cudaSuccess; }
inline cudaError_t cudaEventCreate(cudaEvent_t* e) { *e = new tkemu_event(); return cudaSuccess; }
inline cudaError_t cudaEventDestroy(cudaEvent_t e) { delete e; return cudaSuccess; }
inline cudaError_t cudaEventRecord(cudaEvent_t, cudaStream_t = nullptr) { return cudaSuccess; }
inline cudaError_t cudaEventSynchronize(cudaEvent_t) { return cudaSuccess; }
inline cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t, cudaEvent_t) { *ms = 0; return cudaSuccess; }
template <typename F> cudaError_t cudaFuncSetAttribute(F, cudaFuncAttribute, int) { return cudaSuccess; }
inline cudaError_t cudaRuntimeGetVersion(int* v) { *v = 13000; return cudaSuccess; }
inline cudaError_t cudaDriverGetVersion(int* v) { *v = 13000; return cudaSuccess; }

#define TK_LAUNCH(kernel, grid, block, stream, ...) \
  tkemu::launch((grid), (block), (stream), [=]() { kernel(__VA_ARGS__); })
