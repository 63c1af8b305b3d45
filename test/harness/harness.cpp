// Drives a generated package through its plain C API, without Node:
//   harness check            forward (eval, train), train steps at batch 1, 7 and max, train_epoch at
//                            batch 1, 10 and max, on random data; prints a checksum
//   harness bench STEPS B    train-step and eval throughput
// Exit status 0 when every call succeeded and every number is finite.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <vector>

#include TK_HEADER

#define CAT2(a, b) a##b
#define CAT(a, b) CAT2(a, b)
#define API(f) CAT(TK_PREFIX, CAT(_, f))
#define HANDLE TK_PREFIX

static uint32_t rng_state = 12345u;
static float frand() {
  rng_state = rng_state * 1664525u + 1013904223u;
  return (float)((rng_state >> 8) & 0xffffff) / 16777216.0f - 0.5f;
}

static double now() {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + 1e-9 * t.tv_nsec;
}

static int fail(HANDLE* m, const char* what) {
  fprintf(stderr, "%s failed: %s\n", what, API(last_error)(m));
  return 1;
}

int main(int argc, char** argv) {
  const char* mode = argc > 1 ? argv[1] : "check";
  const int maxb = 64;
  HANDLE* m = API(create)(maxb);
  if (!m) return 1;
  const size_t IN = CAT(TK_PREFIX_UC, _INPUT_NUMEL);
  const int K = CAT(TK_PREFIX_UC, _CLASSES);
  // small random weights
  for (int i = 0; i < API(num_state)(); ++i) {
    const tk_state_info* s = API(state_info)(i);
    if (s->dtype != TK_F32 || s->kind != TK_PARAM) continue;
    float* p = (float*)API(state_data)(m, i);
    for (size_t j = 0; j < s->numel; ++j) p[j] = 0.2f * frand();
  }
  std::vector<float> x(IN * maxb), logits((size_t)K * maxb);
  std::vector<int32_t> labels(maxb);
  for (auto& v : x) v = frand();
  for (int b = 0; b < maxb; ++b) labels[b] = b % K;
  tk_sgd_options o = {};  // SGD, cross-entropy; the rest as set here
  o.lr = 0.01f;
  o.momentum = 0.9f;
  o.weight_decay = 1e-4f;
  o.l1 = 1e-5f;
  o.l2 = 1e-4f;
  if (!strcmp(mode, "bench")) {
    const int steps = argc > 2 ? atoi(argv[2]) : 100, B = argc > 3 ? atoi(argv[3]) : 64;
    tk_step_result r;
    API(train_step)(m, x.data(), labels.data(), B, &o, 1, &r, nullptr);
    double t = now();
    for (int s = 0; s < steps; ++s) API(train_step)(m, x.data(), labels.data(), B, &o, s, &r, nullptr);
    const double tr = steps * B / (now() - t);
    API(set_training)(m, 0);
    t = now();
    for (int s = 0; s < steps; ++s) API(forward)(m, x.data(), B, logits.data(), 0);
    printf("train %.0f img/s, eval %.0f img/s (batch %d, %d threads, %s)\n", tr, steps * B / (now() - t), B, API(num_threads)(m), API(isa)());
    API(destroy)(m);
    return 0;
  }
  double sum = 0.0;
  const int batches[3] = { 1, 7, maxb };
  for (int bi = 0; bi < 3; ++bi) {
    const int B = batches[bi];
    API(set_training)(m, 0);
    if (API(forward)(m, x.data(), B, logits.data(), 0)) return fail(m, "forward eval");
    for (int i = 0; i < B * K; ++i) sum += logits[i];
    API(set_training)(m, 1);
    if (API(forward)(m, x.data(), B, logits.data(), 7)) return fail(m, "forward train");
    for (int s = 0; s < 3; ++s) {
      tk_step_result r;
      if (API(train_step)(m, x.data(), labels.data(), B, &o, API(step_seed)(0, s), &r, logits.data())) return fail(m, "train_step");
      if (!isfinite(r.loss)) {
        fprintf(stderr, "non-finite loss\n");
        return 1;
      }
      sum += r.loss;
    }
  }
  std::vector<uint32_t> order(maxb);
  for (int i = 0; i < maxb; ++i) order[i] = (uint32_t)(maxb - 1 - i);
  double ls = 0.0;
  int64_t ok = 0;
  // batch 1, a ragged last batch, and the max batch
  const int epoch_batches[3] = { 1, 10, maxb };
  for (int bi = 0; bi < 3; ++bi)
    if (API(train_epoch)(m, x.data(), labels.data(), maxb, order.data(), maxb, epoch_batches[bi], &o, 3, 0, &ls, &ok))
      return fail(m, "train_epoch");
  // error paths return codes, never crash
  if (API(forward)(m, x.data(), 0, logits.data(), 0) != TK_EINVAL) return fail(m, "batch 0 not rejected");
  if (API(forward)(m, x.data(), maxb + 1, logits.data(), 0) != TK_EINVAL) return fail(m, "batch > max not rejected");
  labels[0] = K;
  if (API(train_step)(m, x.data(), labels.data(), 2, &o, 0, nullptr, nullptr) != TK_EINVAL) return fail(m, "bad label not rejected");
  labels[0] = 0;
  o.lr = NAN;
  if (API(train_step)(m, x.data(), labels.data(), 2, &o, 0, nullptr, nullptr) != TK_EINVAL) return fail(m, "NaN lr not rejected");
  printf("ok checksum %.6f epoch loss %.6f correct %lld isa %s\n", sum + ls, ls, (long long)ok, API(isa)());
  API(destroy)(m);
  return isfinite(sum + ls) ? 0 : 1;
}
