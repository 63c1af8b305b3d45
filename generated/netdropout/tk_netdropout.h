/*
 * tk_netdropout.h — C API of the compiled model NetDropout (tensorkiln codegen 1).
 * Generated file: do not edit. Plain C, usable without Node.
 *
 * Input  x:      float32 [batch, 3, 32, 32] (NCHW, contiguous)
 * Output logits: float32 [batch, 2]
 * Labels:        int32   [batch], each in [0, 2)
 * 1 <= batch <= the max batch given to tk_netdropout_create (default 256).
 *
 * Functions returning int give TK_OK (0) or an error code; the message is
 * then in tk_netdropout_last_error(). No function aborts on bad input.
 * A handle is not thread-safe: use one handle per thread of the caller.
 */
#ifndef TK_NETDROPOUT_H
#define TK_NETDROPOUT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TK_NETDROPOUT_INPUT_C 3
#define TK_NETDROPOUT_INPUT_H 32
#define TK_NETDROPOUT_INPUT_W 32
#define TK_NETDROPOUT_INPUT_NUMEL 3072
#define TK_NETDROPOUT_CLASSES 2
#define TK_NETDROPOUT_DEFAULT_MAX_BATCH 256
#define TK_NETDROPOUT_NUM_STATE 8
#define TK_NETDROPOUT_NUM_PARAMS 8

#ifndef TK_COMMON_TYPES
#define TK_COMMON_TYPES
enum { TK_OK = 0, TK_EINVAL = 1, TK_ENOMEM = 2 };
enum { TK_PARAM = 0, TK_BUFFER = 1 };
enum { TK_F32 = 0, TK_I64 = 1 };

enum { TK_LOSS_CROSS_ENTROPY = 0, TK_LOSS_NLL = 1 };
enum { TK_OPT_SGD = 0, TK_OPT_ADAM = 1, TK_OPT_ADAMW = 2 };

/**
 * SGD step options (torch.optim.SGD, dampening 0, no Nesterov), loss penalties
 * l1*sum|p| + l2*sum p^2, and the loss: cross-entropy of the output as logits
 * (with label smoothing, as nn.CrossEntropyLoss) or NLL of the output as
 * log-probabilities (nn.NLLLoss). Zero-initialised fields give plain cross-entropy.
 */
typedef struct tk_sgd_options {
  float lr;
  float momentum;
  float weight_decay;
  float l1;
  float l2;
  int loss_kind;
  float label_smoothing;
  /* torch.optim semantics (src/train/rules.ts): TK_OPT_SGD with momentum (and nesterov 1), TK_OPT_ADAM
   * (weight decay coupled: added to the gradient), TK_OPT_ADAMW (decoupled: p *= 1 - lr*wd first);
   * beta1, beta2, eps are Adam's, in double as PyTorch computes its step scalars. */
  int optimizer;
  int nesterov;
  double beta1;
  double beta2;
  double eps;
  /* train_epoch only, NULL for constant: per step of the epoch (ceil(n_order / batch_size) values),
   * the lr and the momentum (SGD) or beta1 (Adam) of a schedule */
  const double* lr_steps;
  const double* momentum_steps;
} tk_sgd_options;

/** What a training step reports. */
typedef struct tk_step_result {
  float loss;    /* mean cross-entropy + penalties (pre-step weights) */
  float loss_ce; /* mean cross-entropy alone */
  int correct;   /* samples whose argmax logit is the label */
} tk_step_result;

/** One state_dict entry under its canonical (first) PyTorch name. */
typedef struct tk_state_info {
  const char* name;
  int kind;  /* TK_PARAM | TK_BUFFER */
  int dtype; /* TK_F32 | TK_I64 */
  int ndim;
  int shape[4];
  size_t numel;
} tk_state_info;
#endif

#ifndef TK_TAP_TYPES
#define TK_TAP_TYPES
/** A value kept readable after a forward (gen build --taps): the name it was asked by, its graph node, per-sample shape. */
typedef struct tk_tap_info {
  const char* name;
  int node;
  int ndim;
  int shape[4];
  size_t numel; /* per sample */
} tk_tap_info;
#endif

typedef struct tk_netdropout tk_netdropout;

/** A model with zeroed parameters (BatchNorm running_var 1); max_batch <= 0 takes the default. NULL if out of memory. */
tk_netdropout* tk_netdropout_create(int max_batch);
/** Bytes the model holds on the heap (what a binding reports to its garbage collector). */
size_t tk_netdropout_memory_bytes(const tk_netdropout* m);
void tk_netdropout_destroy(tk_netdropout* m);
const char* tk_netdropout_last_error(const tk_netdropout* m);
int tk_netdropout_max_batch(const tk_netdropout* m);
/** Instruction set the library was compiled for, e.g. "avx512" or "avx2". */
const char* tk_netdropout_isa(void);
/** Worker threads used for batches >= 2 (default: OpenMP's maximum). */
int tk_netdropout_num_threads(const tk_netdropout* m);
void tk_netdropout_set_num_threads(tk_netdropout* m, int n);

/** Train (1) or eval (0) mode for forward, as PyTorch's module.train()/eval(). */
void tk_netdropout_set_training(tk_netdropout* m, int training);
int tk_netdropout_training(const tk_netdropout* m);

/**
 * Forward pass. In train mode BatchNorm uses batch statistics and updates its
 * running statistics, and dropout masks use `seed`, as PyTorch's forward does.
 */
int tk_netdropout_forward(tk_netdropout* m, const float* x, int batch, float* logits, uint32_t seed);

/**
 * One training step in train mode: forward, mean cross-entropy + penalties,
 * backward, SGD update. result and logits (the train-mode logits) may be NULL.
 */
int tk_netdropout_train_step(tk_netdropout* m, const float* x, const int32_t* labels, int batch, const tk_sgd_options* opts,
                          uint32_t seed, tk_step_result* result, float* logits);

/**
 * A whole epoch in one call: x and labels hold n samples; the epoch visits
 * order[0..n_order) (each < n) in slices of batch_size (the last may be
 * smaller), gathering x[order[i]] and labels[order[i]]. Step s uses the
 * dropout seed tk_netdropout_step_seed(base_seed, first_step + s). Adds each
 * step's loss to *loss_sum and the correct predictions to *correct.
 */
int tk_netdropout_train_epoch(tk_netdropout* m, const float* x, const int32_t* labels, int n, const uint32_t* order, int n_order,
                          int batch_size, const tk_sgd_options* opts, uint32_t base_seed, uint64_t first_step,
                          double* loss_sum, int64_t* correct);

/**
 * Augmentation of train_epoch's batches (torchvision RandomCrop(padding) then
 * RandomHorizontalFlip, as src/data/augment.ts): crop_padding 0 is no crop,
 * flip 0 no flip; fill holds 3 values, the padding per channel (may be NULL
 * without a crop). Each sample's choices hash (step seed, its place in the
 * batch). Off until set; kept until set again.
 */
int tk_netdropout_set_augment(tk_netdropout* m, int crop_padding, int flip, const float* fill);

/** The dropout seed of training step `step` (the runtime's rule). */
uint32_t tk_netdropout_step_seed(uint32_t base_seed, uint64_t step);

/** State (parameters then buffers, PyTorch state_dict order, shared ones once). */
int tk_netdropout_num_state(void);
const tk_state_info* tk_netdropout_state_info(int i);
/** Live storage of state i (float* or int64_t*), NULL if i is out of range. */
void* tk_netdropout_state_data(tk_netdropout* m, int i);
/**
 * d loss / d x [batch, 3, 32, 32] of the last train step (batch must be its batch), for
 * saliency maps and adversarial inputs. TK_EINVAL unless the package was built with input gradients.
 */
int tk_netdropout_input_grad(tk_netdropout* m, float* dst, int batch);
/** Dropout nodes, numbered by stream (the order they were traced in). */
int tk_netdropout_num_dropout(void);
/**
 * Makes dropout k multiply by mask [batch, its values per sample] in train-mode
 * forwards and their backward, instead of drawing its own (gen check replays
 * PyTorch's masks this way); NULL goes back to the hash.
 */
int tk_netdropout_set_dropout_mask(tk_netdropout* m, int k, const float* mask, int batch);
/**
 * d loss / d x into dst [batch, 3, 32, 32] of the mean loss (loss_kind TK_LOSS_*, label_smoothing as
 * tk_sgd_options) of x and labels, in train (1) or eval (0) mode, without a step: weights, BatchNorm buffers and
 * momentum are left as they were. logits [batch, 2] and loss may be NULL. TK_EINVAL unless the package was
 * built with input gradients.
 */
int tk_netdropout_input_gradient(tk_netdropout* m, const float* x, const int32_t* labels, int batch, int train, uint32_t seed,
                              int loss_kind, float label_smoothing, float* dst, float* logits, float* loss);
/** Taps (values kept readable after a forward, gen build --taps): count and info, NULL out of range. */
int tk_netdropout_num_taps(void);
const tk_tap_info* tk_netdropout_tap_info(int i);
/**
 * Copies tap i of the last forward, train step or input_gradient call (batch must be its batch) into dst
 * [batch, numel]; x: that call's input, read only when the tap is the model input itself.
 */
int tk_netdropout_tap(tk_netdropout* m, int i, const float* x, float* dst, int batch);
/** Gradient of parameter i from the last train step (penalties included), NULL for buffers. */
const float* tk_netdropout_grad_data(tk_netdropout* m, int i);
/** Copies state i out / in (numel elements of its dtype). */
int tk_netdropout_get_state(tk_netdropout* m, int i, void* dst);
int tk_netdropout_set_state(tk_netdropout* m, int i, const void* src);
/** SGD momentum buffer of parameter i (NULL for buffers); meaningful when has_momentum is 1. */
float* tk_netdropout_momentum_data(tk_netdropout* m, int i);
/** Copies of parameter i's gradient and momentum buffer, as the CUDA packages' API (TK_EINVAL for a buffer). */
int tk_netdropout_get_grad(tk_netdropout* m, int i, float* dst);
int tk_netdropout_get_momentum(tk_netdropout* m, int i, float* dst);
int tk_netdropout_set_momentum(tk_netdropout* m, int i, const float* src);
/** Whether the momentum buffers exist (PyTorch creates them at the first step with momentum != 0). */
int tk_netdropout_has_momentum(const tk_netdropout* m);
int tk_netdropout_set_has_momentum(tk_netdropout* m, int has);
/** Optimizer state of parameter i: slot 0 the SGD momentum buffer or Adam's exp_avg, slot 1 Adam's exp_avg_sq. */
int tk_netdropout_get_opt_state(tk_netdropout* m, int slot, int i, float* dst);
int tk_netdropout_set_opt_state(tk_netdropout* m, int slot, int i, const float* src);
/** Adam/AdamW steps taken (its t; 0: no moments yet). */
int64_t tk_netdropout_adam_steps(tk_netdropout* m);
int tk_netdropout_set_adam_steps(tk_netdropout* m, int64_t t);
/** Forgets the optimizer state (momentum buffers, Adam moments and step count). */
void tk_netdropout_reset_optimizer(tk_netdropout* m);

#ifdef __cplusplus
}
#endif

#endif
