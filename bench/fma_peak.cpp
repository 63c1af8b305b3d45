// Measured FMA peak of this machine for bench/run.ts: each thread runs 12
// independent chains of vector multiply-adds (enough to hide the FMA latency)
// with the vectors tk_runtime.h uses under the same -march; prints GFLOP/s of
// all threads together (2 FLOPs per lane per FMA). Other processes on the
// cores lower it: it is the peak available while the bench runs.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <omp.h>
#if defined(__AVX512F__)
#define VW 16
#elif defined(__AVX__)
#define VW 8
#else
#define VW 4
#endif
typedef float vf __attribute__((vector_size(VW * 4)));

int main(int argc, char** argv) {
  const int threads = argc > 1 ? atoi(argv[1]) : 1;
  const long iters = 20000000;
  double best = 0;
  for (int rep = 0; rep < 5; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    float sink = 0;
#pragma omp parallel num_threads(threads) reduction(+ : sink)
    {
      vf a[12], m = vf{} + 0.999999f, c = vf{} + 1e-7f;
      for (int k = 0; k < 12; ++k) a[k] = vf{} + (float)(k + omp_get_thread_num());
      for (long i = 0; i < iters; ++i)
#pragma GCC unroll 12
        for (int k = 0; k < 12; ++k) a[k] = a[k] * m + c;
      for (int k = 0; k < 12; ++k) sink += a[k][0];
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double g = (double)threads * iters * 12 * VW * 2 / s / 1e9;
    if (g > best) best = g;
    if (sink == 12345.f) printf("#");
  }
  printf("%.1f %d\n", best, VW);
  return 0;
}
