// Node-API binding of tk_netresdeep (tensorkiln codegen 1). Generated file: do not edit.
// Every misuse (wrong array type or length, bad batch, labels out of range,
// non-finite options) becomes a JS exception; nothing here aborts the process.
//
// Lifecycle (worker_threads included): the addon pins itself in memory, so no
// thread can outlive its code; an env cleanup hook joins the OpenMP pool of
// the env's thread; dispose() frees the model at once, and the native bytes are
// reported to V8 (napi_adjust_external_memory) so the GC sees what a model costs.
// A call that ends while the env is terminating (worker.terminate()) returns
// quietly instead of throwing an unthrowable Napi::Error (which would abort).
#define NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS
#include <dlfcn.h>
#include <napi.h>

#include <cmath>
#include <string>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "tk_netresdeep.h"

namespace {

const size_t IN_NUMEL = TK_NETRESDEEP_INPUT_NUMEL;
const size_t CLASSES = TK_NETRESDEEP_CLASSES;

template <typename T>
T typed(const Napi::Env& env, const Napi::Value& v, napi_typedarray_type type, const char* what, const char* tname) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != type)
    throw Napi::TypeError::New(env, std::string(what) + " must be a " + tname);
  return v.As<T>();
}

int integer(const Napi::Env& env, const Napi::Value& v, const char* what) {
  if (!v.IsNumber()) throw Napi::TypeError::New(env, std::string(what) + " must be a number");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!(d == (double)(int)d)) throw Napi::RangeError::New(env, std::string(what) + " must be an integer, got " + std::to_string(d));
  return (int)d;
}

double number(const Napi::Env& env, const Napi::Value& v, const char* what) {
  if (!v.IsNumber()) throw Napi::TypeError::New(env, std::string(what) + " must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

// A seed or step count: an integer in [0, limit] (a double cast to an unsigned type is undefined otherwise).
double counter(const Napi::Env& env, const Napi::Value& v, const char* what, double limit) {
  const double d = number(env, v, what);
  if (!(d >= 0.0 && d <= limit && d == std::floor(d)))
    throw Napi::RangeError::New(env, std::string(what) + " must be an integer in [0, " + std::to_string((uint64_t)limit) + "], got " + std::to_string(d));
  return d;
}

uint32_t seed32(const Napi::Env& env, const Napi::Value& v, const char* what) { return (uint32_t)counter(env, v, what, 4294967295.0); }
uint64_t steps53(const Napi::Env& env, const Napi::Value& v, const char* what) { return (uint64_t)counter(env, v, what, 9007199254740992.0); }

// loss: {kind: 'cross_entropy', labelSmoothing?} | {kind: 'nll'} | undefined (cross-entropy) into r's loss fields
void lossOptions(const Napi::Env& env, const Napi::Value& loss, tk_sgd_options& r) {
  r.loss_kind = TK_LOSS_CROSS_ENTROPY;
  r.label_smoothing = 0.0f;
  if (loss.IsUndefined()) return;
  if (!loss.IsObject()) throw Napi::TypeError::New(env, "training option loss must be {kind: 'cross_entropy', labelSmoothing?} or {kind: 'nll'}");
  Napi::Object l = loss.As<Napi::Object>();
  const std::string kind = l.Get("kind").IsString() ? l.Get("kind").As<Napi::String>().Utf8Value() : "";
  if (kind == "nll") r.loss_kind = TK_LOSS_NLL;
  else if (kind != "cross_entropy") throw Napi::TypeError::New(env, "training option loss.kind must be 'cross_entropy' or 'nll'");
  Napi::Value ls = l.Get("labelSmoothing");
  if (!ls.IsUndefined()) {
    if (!ls.IsNumber()) throw Napi::TypeError::New(env, "loss.labelSmoothing must be a number in [0, 1]");
    r.label_smoothing = (float)ls.As<Napi::Number>().DoubleValue();
  }
}

tk_sgd_options options(const Napi::Env& env, const Napi::Value& v) {
  if (!v.IsObject()) throw Napi::TypeError::New(env, "training options must be an object {lr, momentum?, weightDecay?, l1?, l2?}");
  Napi::Object o = v.As<Napi::Object>();
  auto get = [&](const char* k, bool required) -> float {
    Napi::Value x = o.Get(k);
    if (x.IsUndefined() && !required) return 0.0f;
    if (!x.IsNumber()) throw Napi::TypeError::New(env, std::string("training option ") + k + " must be a number");
    return (float)x.As<Napi::Number>().DoubleValue();
  };
  tk_sgd_options r = {};
  r.lr = get("lr", true);
  r.momentum = get("momentum", false);
  r.weight_decay = get("weightDecay", false);
  r.l1 = get("l1", false);
  r.l2 = get("l2", false);
  lossOptions(env, o.Get("loss"), r);
  const Napi::Value kind = o.Get("optimizer");
  const std::string k = kind.IsUndefined() ? "sgd" : kind.IsString() ? kind.As<Napi::String>().Utf8Value() : "";
  if (k == "sgd") r.optimizer = TK_OPT_SGD;
  else if (k == "adam") r.optimizer = TK_OPT_ADAM;
  else if (k == "adamw") r.optimizer = TK_OPT_ADAMW;
  else throw Napi::TypeError::New(env, "training option optimizer must be 'sgd', 'adam' or 'adamw'");
  r.nesterov = o.Get("nesterov").ToBoolean().Value() ? 1 : 0;
  r.beta1 = 0.9, r.beta2 = 0.999, r.eps = 1e-8;
  const Napi::Value betas = o.Get("betas");
  if (!betas.IsUndefined()) {
    Napi::Object b = betas.IsObject() ? betas.As<Napi::Object>() : Napi::Object::New(env);
    if (!betas.IsObject() || !b.Get("0").IsNumber() || !b.Get("1").IsNumber())
      throw Napi::TypeError::New(env, "training option betas must be two numbers [beta1, beta2]");
    r.beta1 = b.Get("0").As<Napi::Number>().DoubleValue();
    r.beta2 = b.Get("1").As<Napi::Number>().DoubleValue();
  }
  const Napi::Value eps = o.Get("eps");
  if (!eps.IsUndefined()) {
    if (!eps.IsNumber()) throw Napi::TypeError::New(env, "training option eps must be a number");
    r.eps = eps.As<Napi::Number>().DoubleValue();
  }
  return r;
}

// lrSteps / momentumSteps of trainEpoch's options: one Float64Array value per step of the epoch, or absent
const double* perStep(const Napi::Env& env, const Napi::Value& opts, const char* key, int steps) {
  const Napi::Value v = opts.As<Napi::Object>().Get(key);
  if (v.IsUndefined()) return nullptr;
  auto a = typed<Napi::Float64Array>(env, v, napi_float64_array, key, "Float64Array");
  if (a.ElementLength() != (size_t)steps)
    throw Napi::RangeError::New(env, std::string(key) + " must hold one value per step of the epoch (" + std::to_string(steps) + ")");
  return a.Data();
}

class Model : public Napi::ObjectWrap<Model> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NetResDeepNative",
                       {
                           InstanceMethod("forward", &Model::Forward),
                           InstanceMethod("trainStep", &Model::TrainStep),
                           InstanceMethod("trainEpoch", &Model::TrainEpoch),
                           InstanceMethod("setTraining", &Model::SetTraining),
                           InstanceMethod("getState", &Model::GetState),
                           InstanceMethod("setState", &Model::SetState),
                           InstanceMethod("getGrad", &Model::GetGrad),
                           InstanceMethod("inputGrad", &Model::InputGrad),
                           InstanceMethod("setDropoutMask", &Model::SetDropoutMask),
                           InstanceMethod("setAugment", &Model::SetAugment),
                           InstanceMethod("inputGradient", &Model::InputGradient),
                           InstanceMethod("tap", &Model::Tap),
                           InstanceMethod("resetOptimizer", &Model::ResetOptimizer),
                           InstanceMethod("dispose", &Model::Dispose),
                           InstanceMethod("getMomentum", &Model::GetMomentum),
                           InstanceMethod("setMomentum", &Model::SetMomentum),
                           InstanceMethod("getOptState", &Model::GetOptState),
                           InstanceMethod("setOptState", &Model::SetOptState),
                           InstanceMethod("adamSteps", &Model::AdamSteps),
                           InstanceMethod("setAdamSteps", &Model::SetAdamSteps),
                           InstanceMethod("setNumThreads", &Model::SetNumThreads),
                           InstanceAccessor("training", &Model::Training, nullptr),
                           InstanceAccessor("maxBatch", &Model::MaxBatch, nullptr),
                           InstanceAccessor("disposed", &Model::Disposed, nullptr),
                           InstanceAccessor("nativeBytes", &Model::NativeBytes, nullptr),
                           InstanceAccessor("numThreads", &Model::NumThreads, nullptr),
                       });
  }

  explicit Model(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Model>(info) {
    Napi::Env env = info.Env();
    const int mb = info.Length() > 0 && !info[0].IsUndefined() ? integer(env, info[0], "maxBatch") : 0;
    if (mb < 0 || mb > (1 << 20)) throw Napi::RangeError::New(env, "maxBatch must be in [1, 1048576]");
    m_ = tk_netresdeep_create(mb);
    if (!m_) throw Napi::Error::New(env, "tk_netresdeep_create: out of memory");
    Account(env, tk_netresdeep_memory_bytes(m_));
  }
  // The GC finalizer (or env teardown): never throws.
  ~Model() override { Free(Env()); }

 private:
  tk_netresdeep* m_ = nullptr;
  int64_t bytes_ = 0;

  void Account(napi_env env, size_t bytes) {
    int64_t total = 0;
    bytes_ = (int64_t)bytes;
    napi_adjust_external_memory(env, bytes_, &total);
  }

  void Free(napi_env env) {
    if (!m_) return;
    tk_netresdeep_destroy(m_);
    m_ = nullptr;
    int64_t total = 0;
    napi_adjust_external_memory(env, -bytes_, &total);
    bytes_ = 0;
  }

  // The model, or a JS error once dispose() has freed it (never a NULL dereference).
  tk_netresdeep* Live(const Napi::Env& env) {
    if (!m_) throw Napi::Error::New(env, "NetResDeep: this model was disposed (dispose() frees it; create another)");
    return m_;
  }

  void Check(const Napi::Env& env, int rc) {
    if (rc != TK_OK) throw Napi::RangeError::New(env, tk_netresdeep_last_error(m_));
  }

  int Batch(const Napi::Env& env, const Napi::Value& v) {
    const int b = integer(env, v, "batch");
    const int mb = tk_netresdeep_max_batch(Live(env));
    if (b < 1 || b > mb) throw Napi::RangeError::New(env, "batch must be in [1, " + std::to_string(mb) + "], got " + std::to_string(b));
    return b;
  }

  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    Free(info.Env());
    return info.Env().Undefined();
  }
  Napi::Value Disposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), m_ == nullptr); }
  Napi::Value NativeBytes(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), (double)bytes_); }

  Napi::Float32Array Input(const Napi::Env& env, const Napi::Value& v, size_t n, const char* what) {
    auto x = typed<Napi::Float32Array>(env, v, napi_float32_array, what, "Float32Array");
    if (x.ElementLength() != n * IN_NUMEL)
      throw Napi::RangeError::New(env, std::string(what) + " has " + std::to_string(x.ElementLength()) + " floats, expected " +
                                           std::to_string(n) + " x 3 x 32 x 32 = " + std::to_string(n * IN_NUMEL));
    return x;
  }

  Napi::Int32Array Labels(const Napi::Env& env, const Napi::Value& v, size_t n) {
    auto l = typed<Napi::Int32Array>(env, v, napi_int32_array, "labels", "Int32Array");
    if (l.ElementLength() != n)
      throw Napi::RangeError::New(env, "labels has " + std::to_string(l.ElementLength()) + " entries, expected " + std::to_string(n));
    return l;
  }

  // forward(x: Float32Array, batch: number, seed: number): Float32Array
  Napi::Value Forward(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const int B = Batch(env, info[1]);
    auto x = Input(env, info[0], B, "x");
    const uint32_t seed = info.Length() > 2 ? seed32(env, info[2], "seed") : 0u;
    auto out = Napi::Float32Array::New(env, (size_t)B * CLASSES);
    Check(env, tk_netresdeep_forward(Live(info.Env()), x.Data(), B, out.Data(), seed));
    return out;
  }

  // trainStep(x, labels, batch, opts, seed, wantLogits): {loss, lossCE, correct, logits?}
  Napi::Value TrainStep(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const int B = Batch(env, info[2]);
    auto x = Input(env, info[0], B, "x");
    auto l = Labels(env, info[1], B);
    const tk_sgd_options o = options(env, info[3]);
    const uint32_t seed = seed32(env, info[4], "seed");
    const bool want = info.Length() > 5 && info[5].ToBoolean().Value();
    Napi::Float32Array logits;
    if (want) logits = Napi::Float32Array::New(env, (size_t)B * CLASSES);
    tk_step_result res = { 0.0f, 0.0f, 0 };
    Check(env, tk_netresdeep_train_step(Live(info.Env()), x.Data(), l.Data(), B, &o, seed, &res, want ? logits.Data() : nullptr));
    Napi::Object r = Napi::Object::New(env);
    r.Set("loss", Napi::Number::New(env, res.loss));
    r.Set("lossCE", Napi::Number::New(env, res.loss_ce));
    r.Set("correct", Napi::Number::New(env, res.correct));
    if (want) r.Set("logits", logits);
    return r;
  }

  // trainEpoch(x, labels, n, batchSize, order, opts, baseSeed, firstStep): {loss, correct, steps}
  Napi::Value TrainEpoch(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const int n = integer(env, info[2], "n");
    if (n < 1) throw Napi::RangeError::New(env, "n must be >= 1");
    auto x = Input(env, info[0], n, "x");
    auto l = Labels(env, info[1], n);
    const int bs = Batch(env, info[3]);
    auto order = typed<Napi::Uint32Array>(env, info[4], napi_uint32_array, "order", "Uint32Array");
    if (order.ElementLength() > (size_t)1 << 30) throw Napi::RangeError::New(env, "order is too long");
    tk_sgd_options o = options(env, info[5]);
    o.lr_steps = perStep(env, info[5], "lrSteps", ((int)order.ElementLength() + bs - 1) / bs);
    o.momentum_steps = perStep(env, info[5], "momentumSteps", ((int)order.ElementLength() + bs - 1) / bs);
    const uint32_t seed = seed32(env, info[6], "baseSeed");
    const uint64_t first = steps53(env, info[7], "firstStep");
    double loss = 0.0;
    int64_t correct = 0;
    const int no = (int)order.ElementLength();
    Check(env, tk_netresdeep_train_epoch(Live(info.Env()), x.Data(), l.Data(), n, order.Data(), no, bs, &o, seed, (uint64_t)first, &loss, &correct));
    Napi::Object r = Napi::Object::New(env);
    r.Set("loss", Napi::Number::New(env, loss));
    r.Set("correct", Napi::Number::New(env, (double)correct));
    r.Set("steps", Napi::Number::New(env, (no + bs - 1) / bs));
    return r;
  }

  Napi::Value SetTraining(const Napi::CallbackInfo& info) {
    tk_netresdeep_set_training(Live(info.Env()), info[0].ToBoolean().Value() ? 1 : 0);
    return info.Env().Undefined();
  }
  Napi::Value Training(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), tk_netresdeep_training(Live(info.Env())) != 0); }
  Napi::Value MaxBatch(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), tk_netresdeep_max_batch(Live(info.Env()))); }
  Napi::Value NumThreads(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), tk_netresdeep_num_threads(Live(info.Env()))); }
  Napi::Value SetNumThreads(const Napi::CallbackInfo& info) {
    tk_netresdeep_set_num_threads(Live(info.Env()), integer(info.Env(), info[0], "threads"));
    return info.Env().Undefined();
  }

  const tk_state_info* Info(const Napi::Env& env, const Napi::Value& v) {
    const int i = integer(env, v, "state index");
    const tk_state_info* s = tk_netresdeep_state_info(i);
    if (!s) throw Napi::RangeError::New(env, "no state with index " + std::to_string(i));
    return s;
  }

  // getState(i): a copy (Float32Array or BigInt64Array)
  Napi::Value GetState(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const tk_state_info* s = Info(env, info[0]);
    const int i = info[0].As<Napi::Number>().Int32Value();
    if (s->dtype == TK_I64) {
      auto a = Napi::BigInt64Array::New(env, s->numel);
      Check(env, tk_netresdeep_get_state(Live(info.Env()), i, a.Data()));
      return a;
    }
    auto a = Napi::Float32Array::New(env, s->numel);
    Check(env, tk_netresdeep_get_state(Live(info.Env()), i, a.Data()));
    return a;
  }

  Napi::Value SetState(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const tk_state_info* s = Info(env, info[0]);
    const int i = info[0].As<Napi::Number>().Int32Value();
    if (s->dtype == TK_I64) {
      auto a = typed<Napi::BigInt64Array>(env, info[1], napi_bigint64_array, s->name, "BigInt64Array");
      if (a.ElementLength() != s->numel) throw Napi::RangeError::New(env, std::string(s->name) + ": wrong element count");
      Check(env, tk_netresdeep_set_state(Live(info.Env()), i, a.Data()));
    } else {
      auto a = typed<Napi::Float32Array>(env, info[1], napi_float32_array, s->name, "Float32Array");
      if (a.ElementLength() != s->numel)
        throw Napi::RangeError::New(env, std::string(s->name) + ": " + std::to_string(a.ElementLength()) + " elements given, expected " +
                                             std::to_string(s->numel));
      Check(env, tk_netresdeep_set_state(Live(info.Env()), i, a.Data()));
    }
    return env.Undefined();
  }

  // inputGrad(batch): d loss / d x [batch, C, H, W] of the last train step (packages built with input gradients)
  Napi::Value InputGrad(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const int batch = integer(env, info[0], "batch");
    if (batch < 1) throw Napi::RangeError::New(env, "batch must be >= 1");
    auto a = Napi::Float32Array::New(env, (size_t)batch * IN_NUMEL);
    Check(env, tk_netresdeep_input_grad(m_, a.Data(), batch));
    return a;
  }

  // setDropoutMask(k, mask | null, batch): dropout k multiplies by mask [batch, its values per sample] in train steps
  Napi::Value SetDropoutMask(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const int k = integer(env, info[0], "dropout index");
    if (info[1].IsNull() || info[1].IsUndefined()) {
      Check(env, tk_netresdeep_set_dropout_mask(m_, k, nullptr, 0));
      return env.Undefined();
    }
    auto a = typed<Napi::Float32Array>(env, info[1], napi_float32_array, "dropout mask", "Float32Array");
    const int batch = integer(env, info[2], "batch");
    if (batch < 1 || a.ElementLength() % (size_t)batch != 0) throw Napi::RangeError::New(env, "dropout mask: its length must be batch x values per sample");
    Check(env, tk_netresdeep_set_dropout_mask(m_, k, a.Data(), batch));
    return env.Undefined();
  }

  // setAugment(cropPadding, flip, fill | null): trainEpoch's random crop and flip (fill: the padding per channel)
  Napi::Value SetAugment(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const int crop = integer(env, info[0], "augment crop padding");
    const int flip = info[1].ToBoolean().Value() ? 1 : 0;
    const float* fill = nullptr;
    if (!info[2].IsNull() && !info[2].IsUndefined()) {
      auto a = typed<Napi::Float32Array>(env, info[2], napi_float32_array, "augment fill", "Float32Array");
      if (a.ElementLength() != 3) throw Napi::RangeError::New(env, "augment fill must hold 3 values, one per input channel");
      fill = a.Data();
    }
    Check(env, tk_netresdeep_set_augment(Live(env), crop, flip, fill));
    return env.Undefined();
  }

  // inputGradient(x, labels, batch, train, seed, loss?): {grad, logits, loss} without a step (packages built with input gradients)
  Napi::Value InputGradient(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const int B = Batch(env, info[2]);
    auto x = Input(env, info[0], B, "x");
    auto l = Labels(env, info[1], B);
    const int train = info[3].ToBoolean().Value() ? 1 : 0;
    const uint32_t seed = seed32(env, info[4], "seed");
    tk_sgd_options o;
    lossOptions(env, info[5], o);
    auto grad = Napi::Float32Array::New(env, (size_t)B * IN_NUMEL);
    auto logits = Napi::Float32Array::New(env, (size_t)B * CLASSES);
    float loss = 0.0f;
    Check(env, tk_netresdeep_input_gradient(m_, x.Data(), l.Data(), B, train, seed, o.loss_kind, o.label_smoothing, grad.Data(), logits.Data(), &loss));
    Napi::Object r = Napi::Object::New(env);
    r.Set("grad", grad);
    r.Set("logits", logits);
    r.Set("loss", Napi::Number::New(env, loss));
    return r;
  }

  // tap(i, batch, x?): tap i of the last forward [batch, numel] (x: that forward's input, for a tap of the input itself)
  Napi::Value Tap(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const int i = integer(env, info[0], "tap index");
    const tk_tap_info* t = tk_netresdeep_tap_info(i);
    if (!t) throw Napi::RangeError::New(env, "no tap with index " + std::to_string(i));
    const int B = Batch(env, info[1]);
    const float* x = info.Length() > 2 && !info[2].IsUndefined() ? Input(env, info[2], B, "x").Data() : nullptr;
    auto a = Napi::Float32Array::New(env, (size_t)B * t->numel);
    Check(env, tk_netresdeep_tap(m_, i, x, a.Data(), B));
    return a;
  }

  // Both packages copy state out and in (the CUDA one from the device); a buffer index has no gradient or momentum.
  Napi::Value GetGrad(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const tk_state_info* s = Info(env, info[0]);
    if (s->kind != TK_PARAM) return env.Null();
    auto a = Napi::Float32Array::New(env, s->numel);
    Check(env, tk_netresdeep_get_grad(Live(env), info[0].As<Napi::Number>().Int32Value(), a.Data()));
    return a;
  }

  // getMomentum(i): copy of parameter i's momentum buffer, or null (buffers, or none yet)
  Napi::Value GetMomentum(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const tk_state_info* s = Info(env, info[0]);
    if (s->kind != TK_PARAM || !tk_netresdeep_has_momentum(Live(env))) return env.Null();
    auto a = Napi::Float32Array::New(env, s->numel);
    Check(env, tk_netresdeep_get_momentum(Live(env), info[0].As<Napi::Number>().Int32Value(), a.Data()));
    return a;
  }

  Napi::Value SetMomentum(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const tk_state_info* s = Info(env, info[0]);
    if (s->kind != TK_PARAM) throw Napi::TypeError::New(env, std::string(s->name) + " is not a parameter");
    auto a = typed<Napi::Float32Array>(env, info[1], napi_float32_array, s->name, "Float32Array");
    if (a.ElementLength() != s->numel) throw Napi::RangeError::New(env, std::string(s->name) + ": wrong element count");
    Check(env, tk_netresdeep_set_momentum(Live(env), info[0].As<Napi::Number>().Int32Value(), a.Data()));
    Check(env, tk_netresdeep_set_has_momentum(Live(env), 1));
    return env.Undefined();
  }

  // getOptState(slot, i): copy of parameter i's optimizer slot (0: momentum or exp_avg, 1: exp_avg_sq)
  Napi::Value GetOptState(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const tk_state_info* s = Info(env, info[1]);
    if (s->kind != TK_PARAM) throw Napi::TypeError::New(env, std::string(s->name) + " is not a parameter");
    auto a = Napi::Float32Array::New(env, s->numel);
    Check(env, tk_netresdeep_get_opt_state(Live(env), integer(env, info[0], "slot"), info[1].As<Napi::Number>().Int32Value(), a.Data()));
    return a;
  }

  Napi::Value SetOptState(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const tk_state_info* s = Info(env, info[1]);
    if (s->kind != TK_PARAM) throw Napi::TypeError::New(env, std::string(s->name) + " is not a parameter");
    auto a = typed<Napi::Float32Array>(env, info[2], napi_float32_array, s->name, "Float32Array");
    if (a.ElementLength() != s->numel) throw Napi::RangeError::New(env, std::string(s->name) + ": wrong element count");
    Check(env, tk_netresdeep_set_opt_state(Live(env), integer(env, info[0], "slot"), info[1].As<Napi::Number>().Int32Value(), a.Data()));
    return env.Undefined();
  }

  Napi::Value AdamSteps(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), (double)tk_netresdeep_adam_steps(Live(info.Env()))); }

  Napi::Value SetAdamSteps(const Napi::CallbackInfo& info) {
    Check(info.Env(), tk_netresdeep_set_adam_steps(Live(info.Env()), (int64_t)steps53(info.Env(), info[0], "adamSteps")));
    return info.Env().Undefined();
  }

  Napi::Value ResetOptimizer(const Napi::CallbackInfo& info) {
    tk_netresdeep_reset_optimizer(Live(info.Env()));
    return info.Env().Undefined();
  }
};

Napi::Value StepSeed(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const uint32_t base = seed32(env, info[0], "seed");
  const uint64_t step = steps53(env, info[1], "step");
  return Napi::Number::New(env, tk_netresdeep_step_seed(base, (uint64_t)step));
}

// Keeps this addon (and libgomp, which it loads) mapped until the process ends.
// Node unloads an addon when the last worker using it exits; a pool thread
// still spinning in the unloaded code would then crash the whole process.
void PinInMemory() {
  Dl_info self;
  if (dladdr((void*)&PinInMemory, &self) && self.dli_fname) dlopen(self.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
}

#ifdef _OPENMP
// Runs on the env's own thread when it goes away (worker exit or terminate, or
// process exit): joins the OpenMP pool that thread started (libgomp: one pool per
// calling thread), so no pool thread outlives the env that used it.
void JoinThreads(void*) { omp_pause_resource_all(omp_pause_hard); }
#endif

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  PinInMemory();
#ifdef _OPENMP
  napi_add_env_cleanup_hook(env, JoinThreads, nullptr);
#endif
  exports.Set("Model", Model::Define(env));
  exports.Set("stepSeed", Napi::Function::New(env, StepSeed));
  exports.Set("isa", Napi::String::New(env, tk_netresdeep_isa()));
  Napi::Array states = Napi::Array::New(env, tk_netresdeep_num_state());
  for (int i = 0; i < tk_netresdeep_num_state(); ++i) {
    const tk_state_info* s = tk_netresdeep_state_info(i);
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", s->name);
    o.Set("kind", s->kind == TK_PARAM ? "param" : "buffer");
    o.Set("dtype", s->dtype == TK_I64 ? "I64" : "F32");
    Napi::Array shape = Napi::Array::New(env, s->ndim);
    for (int d = 0; d < s->ndim; ++d) shape.Set(d, s->shape[d]);
    o.Set("shape", shape);
    states.Set(i, o);
  }
  exports.Set("state", states);
  Napi::Array taps = Napi::Array::New(env, tk_netresdeep_num_taps());
  for (int i = 0; i < tk_netresdeep_num_taps(); ++i) {
    const tk_tap_info* t = tk_netresdeep_tap_info(i);
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", t->name);
    o.Set("node", t->node);
    Napi::Array shape = Napi::Array::New(env, t->ndim);
    for (int d = 0; d < t->ndim; ++d) shape.Set(d, t->shape[d]);
    o.Set("shape", shape);
    taps.Set(i, o);
  }
  exports.Set("taps", taps);
  return exports;
}

}  // namespace

NODE_API_MODULE(tk_netresdeep, Init)
