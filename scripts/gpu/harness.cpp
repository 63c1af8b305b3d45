// GPU check harness for one generated CUDA package (compiled once per package
// with -DTK_PKG=<name>): compares the package against reference safetensors
// (tkref-v1, written by tools/export-reference.ts) and times CIFAR-2 training.
//
//   harness check <ref.safetensors>...
//   harness bench <cifar dir> <init ref.safetensors> [epochs=100] [batch=64] [lr=0.01] [graphs=1] [limit=0] [profile steps=20]
//
// Output lines (parsed by scripts/gpu-check.sh):
//   CHECK <case> <tensor> PASS|FAIL ratio=<err/allowed> abs=<worst |err|> n=<numel>
//   CASE <case> PASS|FAIL checks=<n> failed=<n> worst=<tensor>:<ratio>
//   BENCH <pkg> key=value ...
//   NODEVICE <message>          (exit code 3)
// Exit code: 0 all passed, 1 a check failed, 2 bad input, 3 no CUDA device.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#define TK_CAT2(a, b) a##b
#define TK_CAT(a, b) TK_CAT2(a, b)
#define TK_STR2(a) #a
#define TK_STR(a) TK_STR2(a)
#include TK_STR(TK_CAT(TK_PKG, _cuda.h))
#define FN(x) TK_CAT(TK_PKG, TK_CAT(_cuda_, x))
typedef TK_CAT(TK_PKG, _cuda) Model;
static const char* kPkg = TK_STR(TK_PKG);

// ---------------------------------------------------------------- tiny JSON (safetensors headers)
struct Json {
  enum Kind { Null, Bool, Num, Str, Arr, Obj } kind = Null;
  double num = 0;
  std::string str;
  std::vector<Json> arr;
  std::vector<std::pair<std::string, Json>> obj;
  const Json* get(const std::string& k) const {
    for (auto& e : obj) if (e.first == k) return &e.second;
    return nullptr;
  }
};

struct JsonParser {
  const std::string& s;
  size_t i = 0;
  explicit JsonParser(const std::string& t) : s(t) {}
  void ws() { while (i < s.size() && (s[i] == ' ' || s[i] == '\n' || s[i] == '\r' || s[i] == '\t')) i++; }
  [[noreturn]] void bad(const char* what) { throw std::runtime_error(std::string("JSON header: ") + what + " at byte " + std::to_string(i)); }
  Json value() {
    ws();
    if (i >= s.size()) bad("unexpected end");
    Json j;
    char c = s[i];
    if (c == '{') {
      j.kind = Json::Obj; i++; ws();
      if (i < s.size() && s[i] == '}') { i++; return j; }
      for (;;) {
        ws();
        if (s[i] != '"') bad("expected a key");
        std::string k = string();
        ws();
        if (s[i] != ':') bad("expected ':'");
        i++;
        j.obj.emplace_back(k, value());
        ws();
        if (s[i] == ',') { i++; continue; }
        if (s[i] == '}') { i++; return j; }
        bad("expected ',' or '}'");
      }
    }
    if (c == '[') {
      j.kind = Json::Arr; i++; ws();
      if (i < s.size() && s[i] == ']') { i++; return j; }
      for (;;) {
        j.arr.push_back(value());
        ws();
        if (s[i] == ',') { i++; continue; }
        if (s[i] == ']') { i++; return j; }
        bad("expected ',' or ']'");
      }
    }
    if (c == '"') { j.kind = Json::Str; j.str = string(); return j; }
    if (s.compare(i, 4, "null") == 0) { i += 4; return j; }
    if (s.compare(i, 4, "true") == 0) { i += 4; j.kind = Json::Bool; j.num = 1; return j; }
    if (s.compare(i, 5, "false") == 0) { i += 5; j.kind = Json::Bool; return j; }
    size_t end = i;
    while (end < s.size() && std::strchr("+-0123456789.eE", s[end])) end++;
    if (end == i) bad("unexpected character");
    j.kind = Json::Num;
    j.num = std::strtod(s.substr(i, end - i).c_str(), nullptr);
    i = end;
    return j;
  }
  std::string string() {
    std::string out;
    i++;
    while (i < s.size() && s[i] != '"') {
      if (s[i] == '\\') {
        i++;
        char e = s[i];
        if (e == 'n') out += '\n'; else if (e == 't') out += '\t'; else if (e == 'u') { out += '?'; i += 4; } else out += e;
      } else out += s[i];
      i++;
    }
    if (i >= s.size()) bad("unterminated string");
    i++;
    return out;
  }
};

// ---------------------------------------------------------------- safetensors
struct Tensor {
  std::string dtype;
  std::vector<int64_t> shape;
  std::vector<unsigned char> bytes;
  size_t numel() const { size_t n = 1; for (auto d : shape) n *= (size_t)d; return n; }
  std::vector<double> values() const {
    std::vector<double> v(numel());
    for (size_t k = 0; k < v.size(); k++) {
      if (dtype == "F32") { float f; std::memcpy(&f, &bytes[k * 4], 4); v[k] = f; }
      else if (dtype == "F64") { double d; std::memcpy(&d, &bytes[k * 8], 8); v[k] = d; }
      else if (dtype == "I64") { int64_t q; std::memcpy(&q, &bytes[k * 8], 8); v[k] = (double)q; }
      else if (dtype == "I32") { int32_t q; std::memcpy(&q, &bytes[k * 4], 4); v[k] = q; }
      else throw std::runtime_error("unsupported dtype " + dtype);
    }
    return v;
  }
  std::vector<float> f32() const { auto v = values(); return std::vector<float>(v.begin(), v.end()); }
};

struct RefFile {
  std::string path;
  std::vector<std::string> order;
  std::map<std::string, Tensor> t;
  std::map<std::string, std::string> meta;
  bool has(const std::string& k) const { return t.count(k) > 0; }
  const Tensor& at(const std::string& k) const {
    auto it = t.find(k);
    if (it == t.end()) throw std::runtime_error(path + ": no tensor '" + k + "'");
    return it->second;
  }
  double num(const std::string& k, double def) const {
    auto it = meta.find(k);
    return it == meta.end() ? def : std::strtod(it->second.c_str(), nullptr);
  }
};

static RefFile load_ref(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot open " + path);
  std::vector<unsigned char> all((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (all.size() < 8) throw std::runtime_error(path + ": too short for safetensors");
  uint64_t n = 0;
  for (int k = 7; k >= 0; k--) n = (n << 8) | all[k];
  if (n > all.size() - 8) throw std::runtime_error(path + ": header length beyond the file");
  std::string header(all.begin() + 8, all.begin() + 8 + n);
  JsonParser p(header);
  Json h = p.value();
  RefFile r;
  r.path = path;
  const size_t base = 8 + n;
  for (auto& e : h.obj) {
    if (e.first == "__metadata__") {
      for (auto& m : e.second.obj) r.meta[m.first] = m.second.str;
      continue;
    }
    Tensor t;
    t.dtype = e.second.get("dtype")->str;
    for (auto& d : e.second.get("shape")->arr) t.shape.push_back((int64_t)d.num);
    const Json* off = e.second.get("data_offsets");
    size_t b0 = (size_t)off->arr[0].num, b1 = (size_t)off->arr[1].num;
    if (base + b1 > all.size() || b0 > b1) throw std::runtime_error(path + ": tensor " + e.first + " outside the file");
    t.bytes.assign(all.begin() + base + b0, all.begin() + base + b1);
    r.order.push_back(e.first);
    r.t[e.first] = std::move(t);
  }
  return r;
}

// ---------------------------------------------------------------- checks
struct Checker {
  std::string kase;
  int checks = 0, failed = 0;
  double worst = 0;
  std::string worst_name;
  // mode: 0 elementwise (atol + rtol*|ref_i|), 1 tensor (atol + rtol*max|ref|), 2 exact
  void compare(const std::string& name, const std::vector<double>& got, const std::vector<double>& ref, int mode, double atol, double rtol) {
    checks++;
    double refmax = 0;
    for (double v : ref) refmax = std::max(refmax, std::fabs(v));
    double ratio = 0, worst_abs = 0;
    bool ok = got.size() == ref.size();
    if (ok) {
      for (size_t k = 0; k < ref.size(); k++) {
        double d = std::fabs(got[k] - ref[k]);
        if (std::isnan(got[k]) != std::isnan(ref[k])) d = INFINITY;
        else if (std::isnan(ref[k])) d = 0;
        const double allowed = mode == 2 ? 0 : atol + rtol * (mode == 1 ? refmax : std::fabs(ref[k]));
        const double r = d == 0 ? 0 : (allowed == 0 ? INFINITY : d / allowed);
        ratio = std::max(ratio, r);
        worst_abs = std::max(worst_abs, d);
      }
    } else ratio = INFINITY;
    const bool pass = ok && ratio <= 1.0;
    if (!pass) failed++;
    if (ratio >= worst) { worst = ratio; worst_name = name; }
    std::printf("CHECK %s %s %s ratio=%.3g abs=%.3g n=%zu%s\n", kase.c_str(), name.c_str(), pass ? "PASS" : "FAIL", ratio, worst_abs, ref.size(),
                ok ? "" : " (size mismatch)");
  }
};

[[noreturn]] static void die_api(const char* what) {
  std::printf("ERROR %s: %s\n", what, FN(last_error)(nullptr));
  std::fflush(stdout);
  std::exit(2);
}

static Model* create_or_exit() {
  Model* m = nullptr;
  int r = FN(create)(&m, 0);
  if (r == TK_ENODEV) {
    std::printf("NODEVICE %s\n", FN(last_error)(nullptr));
    std::fflush(stdout);
    std::exit(3);
  }
  if (r) die_api("create");
  return m;
}

static void load_state(Model* m, const RefFile& ref, const std::string& prefix) {
  for (auto& name : ref.order) {
    if (name.compare(0, prefix.size(), prefix) != 0) continue;
    const Tensor& t = ref.at(name);
    std::string key = name.substr(prefix.size());
    const int i = FN(state_index)(key.c_str());
    if (i < 0) throw std::runtime_error("the package has no state '" + key + "'");
    const tk_state_info* info = FN(state_info)(i);
    if (info->numel * (info->dtype == TK_I64 ? 8 : 4) != t.bytes.size()) throw std::runtime_error("state '" + key + "' has another size in the reference");
    if (FN(set_state)(m, i, t.bytes.data())) die_api(("set_state " + key).c_str());
  }
}

static void reset_optimizer(Model* m) {
  if (FN(reset_optimizer)(m)) die_api("reset_optimizer");
}

static std::vector<double> get_state(Model* m, const std::string& name) {
  const int i = FN(state_index)(name.c_str());
  if (i < 0) throw std::runtime_error("the package has no state '" + name + "'");
  const tk_state_info* info = FN(state_info)(i);
  std::vector<double> out(info->numel);
  if (info->dtype == TK_I64) {
    std::vector<int64_t> v(info->numel);
    if (FN(get_state)(m, i, v.data())) die_api(("get_state " + name).c_str());
    for (size_t k = 0; k < v.size(); k++) out[k] = (double)v[k];
  } else {
    std::vector<float> v(info->numel);
    if (FN(get_state)(m, i, v.data())) die_api(("get_state " + name).c_str());
    for (size_t k = 0; k < v.size(); k++) out[k] = v[k];
  }
  return out;
}

static std::vector<double> tod(const std::vector<float>& v) { return std::vector<double>(v.begin(), v.end()); }

static tk_sgd_options options_of(const RefFile& r) {
  tk_sgd_options o = {};  // loss_kind 0, label_smoothing 0: plain cross-entropy
  o.lr = (float)r.num("lr", 0.01);
  o.momentum = (float)r.num("momentum", 0);
  o.weight_decay = (float)r.num("weight_decay", 0);
  o.l1 = (float)r.num("l1", 0);
  o.l2 = (float)r.num("l2", 0);
  return o;
}

// Tolerances (../shared/golden/README.md): logits and loss 1e-5 + 1e-4·|ref|; each gradient
// 1e-4·max|ref| + 1e-6; state after one step 1e-6 + 1e-5·|ref|. After k > 1 steps the
// absolute part grows to k·1e-6: every step adds lr·(gradient rounding) to each parameter.
static const double kLogitAtol = 1e-5, kLogitRtol = 1e-4, kGradAtol = 1e-6, kGradRtol = 1e-4, kAfterAtol = 1e-6, kAfterRtol = 1e-5;

static bool check_case(const std::string& path) {
  RefFile ref = load_ref(path);
  Checker c;
  c.kase = ref.meta.count("case") ? ref.meta["case"] : path;
  Model* m = create_or_exit();
  load_state(m, ref, "init.");
  const Tensor& xt = ref.at("x");
  const int B = (int)xt.shape[0];
  const std::vector<float> x = xt.f32();
  std::vector<int32_t> labels;
  for (double v : ref.at("labels").values()) labels.push_back((int32_t)v);
  const int K = (int)ref.at("step.logits").shape[1];
  std::vector<float> logits((size_t)B * K);
  if (ref.has("logits_eval")) {
    FN(set_training)(m, 0);
    if (FN(forward)(m, x.data(), B, logits.data(), 0)) die_api("forward eval");
    c.compare("logits_eval", tod(logits), ref.at("logits_eval").values(), 0, kLogitAtol, kLogitRtol);
  }
  const tk_sgd_options opts = options_of(ref);
  const uint32_t seed = (uint32_t)ref.num("seed", 0);
  const int steps = (int)ref.num("steps", 1);
  std::vector<double> losses;
  for (int k = 0; k < steps; k++) {
    tk_step_result res;
    if (FN(train_step)(m, x.data(), labels.data(), B, &opts, seed + (uint32_t)k, &res, k == 0 ? logits.data() : nullptr)) die_api("train_step");
    const double loss = res.loss;
    if (std::getenv("TK_HARNESS_VERBOSE")) std::printf("STEP %d loss=%.9g ce=%.9g\n", k, (double)res.loss, (double)res.loss_ce);
    losses.push_back(loss);
    if (k == 0) {
      if (ref.has("step.logits")) c.compare("step.logits", tod(logits), ref.at("step.logits").values(), 0, kLogitAtol, kLogitRtol);
      if (ref.has("step.loss")) c.compare("step.loss", {loss}, ref.at("step.loss").values(), 0, kLogitAtol, kLogitRtol);
      for (auto& name : ref.order) {
        if (name.compare(0, 10, "step.grad.") != 0) continue;
        const std::string p = name.substr(10);
        const Tensor& t = ref.at(name);
        std::vector<float> g(t.numel());
        const int pi = FN(state_index)(p.c_str());
        if (pi < 0 || FN(state_info)(pi)->numel != g.size()) throw std::runtime_error("no parameter '" + p + "' of that size");
        if (FN(get_grad)(m, pi, g.data())) die_api(("get_grad " + p).c_str());
        c.compare("grad." + p, tod(g), t.values(), 1, kGradAtol, kGradRtol);
      }
    }
  }
  if (ref.has("step.loss_steps") && steps > 1) c.compare("loss_steps", losses, ref.at("step.loss_steps").values(), 0, kLogitAtol, kLogitRtol);
  for (auto& name : ref.order) {
    if (name.compare(0, 6, "after.") != 0) continue;
    const std::string key = name.substr(6);
    const Tensor& t = ref.at(name);
    c.compare("after." + key, get_state(m, key), t.values(), t.dtype == "I64" ? 2 : 0, kAfterAtol * steps, kAfterRtol);
  }
  if (ref.has("logits_eval_after")) {
    FN(set_training)(m, 0);
    if (FN(forward)(m, x.data(), B, logits.data(), 0)) die_api("forward eval after");
    c.compare("logits_eval_after", tod(logits), ref.at("logits_eval_after").values(), 0, kLogitAtol, kLogitRtol);
  }
  if (ref.has("epoch.x")) {
    const std::vector<float> ex = ref.at("epoch.x").f32();
    std::vector<int32_t> ey;
    for (double v : ref.at("epoch.labels").values()) ey.push_back((int32_t)v);
    std::vector<uint32_t> order;
    for (double v : ref.at("epoch.order").values()) order.push_back((uint32_t)v);
    const int n = (int)ey.size();
    const int eb = (int)ref.num("epoch_batch", 4);
    const int nsteps = (n + eb - 1) / eb;
    for (int graphs = 1; graphs >= 0; graphs--) {
      load_state(m, ref, "init.");
      reset_optimizer(m);
      FN(set_graphs)(m, graphs);
      double loss_sum = 0;
      int64_t correct = 0;
      if (FN(train_epoch)(m, ex.data(), ey.data(), n, order.data(), n, eb, &opts, seed, 0, &loss_sum, &correct)) die_api("train_epoch");
      const std::string tag = graphs ? "epoch(graphs)" : "epoch(direct)";
      c.compare(tag + ".loss_sum", {loss_sum}, ref.at("epoch.loss_sum").values(), 0, kLogitAtol, kLogitRtol);
      c.compare(tag + ".correct", {(double)correct}, ref.at("epoch.correct").values(), 2, 0, 0);
      for (auto& name : ref.order) {
        if (name.compare(0, 12, "epoch.after.") != 0) continue;
        const std::string key = name.substr(12);
        const Tensor& t = ref.at(name);
        c.compare(tag + ".after." + key, get_state(m, key), t.values(), t.dtype == "I64" ? 2 : 0, kAfterAtol * nsteps, kAfterRtol);
      }
    }
  }
  FN(destroy)(m);
  std::printf("CASE %s %s checks=%d failed=%d worst=%s:%.3g source=%s margin=%s\n", c.kase.c_str(), c.failed ? "FAIL" : "PASS", c.checks, c.failed, c.worst_name.c_str(), c.worst,
              ref.meta.count("source") ? ref.meta["source"].c_str() : "?", ref.meta.count("margin") ? ref.meta["margin"].c_str() : "-");
  std::fflush(stdout);
  return c.failed == 0;
}

// ---------------------------------------------------------------- CIFAR-2 timing
struct Split {
  std::vector<unsigned char> img;
  std::vector<int32_t> label;
};

static bool read_batch(const std::string& path, Split& s) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return false;
  std::vector<unsigned char> all((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (all.size() % 3073 != 0) throw std::runtime_error(path + ": not a CIFAR-10 binary batch (size not a multiple of 3073)");
  for (size_t r = 0; r < all.size() / 3073; r++) {
    const unsigned char lab = all[r * 3073];
    if (lab != 0 && lab != 2) continue;  // CIFAR-2: airplane 0, bird 2 -> 0, 1
    s.label.push_back(lab == 0 ? 0 : 1);
    s.img.insert(s.img.end(), all.begin() + r * 3073 + 1, all.begin() + (r + 1) * 3073);
  }
  return true;
}

static int bench(int argc, char** argv) {
  if (argc < 4) { std::printf("usage: harness bench <cifar dir> <init ref> [epochs] [batch] [lr] [graphs]\n"); return 2; }
  const std::string dir = argv[2];
  RefFile ref = load_ref(argv[3]);
  const int epochs = argc > 4 ? std::atoi(argv[4]) : 100;
  const int batch = argc > 5 ? std::atoi(argv[5]) : 64;
  const float lr = argc > 6 ? (float)std::atof(argv[6]) : 0.01f;
  const int graphs = argc > 7 ? std::atoi(argv[7]) : 1;
  const int limit = argc > 8 ? std::atoi(argv[8]) : 0;  // > 0: train on the first `limit` images only (quick tests)
  const int prof_steps = argc > 9 ? std::atoi(argv[9]) : 20;  // steps of the per-kernel profile (0: none)
  Split train, val;
  for (int k = 1; k <= 5; k++)
    if (!read_batch(dir + "/data_batch_" + std::to_string(k) + ".bin", train)) { std::printf("ERROR missing %s/data_batch_%d.bin\n", dir.c_str(), k); return 2; }
  if (!read_batch(dir + "/test_batch.bin", val)) { std::printf("ERROR missing %s/test_batch.bin\n", dir.c_str()); return 2; }
  // the book's Normalize: per-channel mean and unbiased std of ToTensor'd training pixels
  double mean[3], stdv[3];
  if (limit > 0 && (size_t)limit < train.label.size()) {
    train.label.resize(limit);
    train.img.resize((size_t)limit * 3072);
  }
  const size_t ntr = train.label.size();
  for (int c = 0; c < 3; c++) {
    double hist[256] = {0};
    for (size_t i = 0; i < ntr; i++)
      for (int p = 0; p < 1024; p++) hist[train.img[i * 3072 + c * 1024 + p]]++;
    double cnt = (double)ntr * 1024, s = 0;
    for (int v = 0; v < 256; v++) s += hist[v] * (v / 255.0);
    mean[c] = s / cnt;
    double q = 0;
    for (int v = 0; v < 256; v++) q += hist[v] * (v / 255.0 - mean[c]) * (v / 255.0 - mean[c]);
    stdv[c] = std::sqrt(q / (cnt - 1));
  }
  auto normalise = [&](const Split& s) {
    std::vector<float> x(s.img.size());
    for (size_t i = 0; i < s.label.size(); i++)
      for (int c = 0; c < 3; c++)
        for (int p = 0; p < 1024; p++) {
          const size_t k = i * 3072 + c * 1024 + p;
          x[k] = (float)(((float)s.img[k] / 255.0f - (float)mean[c]) / (float)stdv[c]);
        }
    return x;
  };
  const std::vector<float> xtr = normalise(train), xva = normalise(val);
  Model* m = create_or_exit();
  load_state(m, ref, "init.");
  reset_optimizer(m);
  if (FN(set_dataset)(m, xtr.data(), train.label.data(), (int)ntr)) die_api("set_dataset");
  std::mt19937 gen(20240601u);
  std::vector<std::vector<uint32_t>> orders(epochs, std::vector<uint32_t>(ntr));
  for (auto& o : orders) {
    for (size_t i = 0; i < ntr; i++) o[i] = (uint32_t)i;
    std::shuffle(o.begin(), o.end(), gen);
  }
  const tk_sgd_options opts = {lr, 0.f, 0.f, 0.f, 0.f, TK_LOSS_CROSS_ENTROPY, 0.f};
  FN(set_graphs)(m, graphs);
  const int batches = (int)((ntr + batch - 1) / batch);
  double first_loss = 0, last_loss = 0;
  int64_t last_correct = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (int e = 0; e < epochs; e++) {
    double loss_sum = 0;
    int64_t correct = 0;
    if (FN(train_epoch)(m, nullptr, nullptr, 0, orders[e].data(), (int)ntr, batch, &opts, 12345u, (uint64_t)e * batches, &loss_sum, &correct)) die_api("train_epoch");
    if (e == 0) first_loss = loss_sum / batches;
    last_loss = loss_sum / batches;
    last_correct = correct;
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (FN(set_dataset)(m, xva.data(), val.label.data(), (int)val.label.size())) die_api("set_dataset val");
  int64_t vc = 0;
  if (FN(eval_dataset)(m, 0, (int)val.label.size(), &vc)) die_api("eval_dataset");
  std::printf("BENCH %s device=\"%s\" epochs=%d batch=%d lr=%g graphs=%d train_s=%.4f ms_per_epoch=%.3f img_per_s=%.0f loss_first=%.4f loss_last=%.4f train_acc=%.4f val_acc=%.4f n_train=%zu n_val=%zu\n",
              kPkg, FN(device_name)(m), epochs, batch, lr, graphs, secs, 1000 * secs / std::max(1, epochs), (double)ntr * epochs / secs, first_loss, last_loss,
              (double)last_correct / (double)ntr, (double)vc / (double)val.label.size(), ntr, val.label.size());
  // per-kernel profile (uncaptured steps, lr 0) on the validation images
  std::vector<char> prof(1 << 16);
  if (prof_steps <= 0) {
    // no profile
  } else if (FN(profile)(m, prof_steps, batch, prof.data(), prof.size()) == TK_OK) {
    std::istringstream lines(prof.data());
    std::string line;
    while (std::getline(lines, line)) std::printf("PROFILE %s %s\n", kPkg, line.c_str());
  } else {
    std::printf("PROFILE %s failed: %s\n", kPkg, FN(last_error)(nullptr));
  }
  FN(destroy)(m);
  return 0;
}

int main(int argc, char** argv) {
  try {
    if (argc >= 2 && std::string(argv[1]) == "check") {
      bool ok = true;
      for (int i = 2; i < argc; i++) ok = check_case(argv[i]) && ok;
      return ok ? 0 : 1;
    }
    if (argc >= 2 && std::string(argv[1]) == "bench") return bench(argc, argv);
    std::printf("usage: %s check <ref.safetensors>... | bench <cifar dir> <init ref> [epochs] [batch] [lr] [graphs]\n", argv[0]);
    return 2;
  } catch (const std::exception& e) {
    std::printf("ERROR %s\n", e.what());
    return 2;
  }
}
