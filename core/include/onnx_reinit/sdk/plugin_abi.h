/* The plugin boundary in plain C: the one entry point a strategy plugin
 * exports, the descriptor it returns, and the host services it may call
 * (random streams, a parallel loop on the host's threads). Nothing but C
 * types crosses it; no exception ever does.
 *
 * Rules (docs/DESIGN.md section 3):
 *  - A plugin exports exactly one symbol, onnx_reinit_plugin_entry, declared
 *    below with its exact type. It returns a pointer to a static, constant
 *    descriptor that lives as long as the library is loaded.
 *  - The host checks abi_version == ONNX_REINIT_ABI_VERSION and
 *    struct_size >= ONNX_REINIT_PLUGIN_DESC_MIN_SIZE (the first released
 *    descriptor's) before reading further, and reads only its struct_size
 *    bytes: a descriptor with fields appended later still loads.
 *  - Every numeric value crossing the boundary (status codes, dtypes,
 *    parameter types, roles, activations, flags) is pinned below with
 *    ONNX_REINIT_ABI_PIN: renumbering one does not compile.
 *  - Every function that can fail returns an onnx_reinit_status and writes a
 *    NUL-terminated message into the caller's buffer.
 *
 * THREADS: the host calls `fill` and `target_moments` of ONE strategy
 * instance from several threads at once: for different tensors, and for
 * different chunks of one tensor (element-wise strategies). An instance must
 * therefore be immutable after `create`: no caches, scratch buffers or
 * counters in it (and no unsynchronized globals). Keep per-call state on the
 * stack. `create` and `destroy` are never concurrent with calls on the same
 * instance.
 *
 * Versioned structs: every struct that starts with `struct_size` may grow
 * at its end without an ABI bump. Whoever receives one reads only the fields
 * that lie within its struct_size, and refuses one smaller than the
 * ONNX_REINIT_*_MIN_SIZE of its type (the layout of this ABI version) with an
 * error: nothing is read past the end. Fields appended later must have a
 * meaning for "absent" (the reader's default).
 *
 * C++ plugin authors use plugin.h, which writes all of this for them. */
#ifndef ONNX_REINIT_PLUGIN_ABI_H
#define ONNX_REINIT_PLUGIN_ABI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* C naming: upper-case constants, as C users expect. */
/* NOLINTBEGIN(readability-identifier-naming) */

/* Bumped on any change to the layout or meaning of the structs below, except
 * fields appended to a struct that starts with `struct_size`.
 * 2: onnx_reinit_strategy_desc gained struct_size; target_moments gained an
 *    error buffer and ONNX_REINIT_UNKNOWN. */
#define ONNX_REINIT_ABI_VERSION 2u
#define ONNX_REINIT_PLUGIN_ENTRY_NAME "onnx_reinit_plugin_entry"

/* A compile-time check of the ABI: static_assert in C++ and C11; in older
 * C an array declaration whose size is negative when the check fails. */
#if defined(__cplusplus)
#define ONNX_REINIT_ABI_PIN(condition) static_assert(condition, #condition)
#elif defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
#define ONNX_REINIT_ABI_PIN(condition) _Static_assert(condition, #condition)
#else
#define ONNX_REINIT_ABI_PIN(condition) extern int onnx_reinit_abi_pin[(condition) ? 1 : -1]
#endif

#if defined(_WIN32)
#define ONNX_REINIT_EXPORT __declspec(dllexport)
#else
#define ONNX_REINIT_EXPORT __attribute__((visibility("default")))
#endif

typedef enum onnx_reinit_status {
  ONNX_REINIT_OK = 0,
  ONNX_REINIT_ERROR = 1,            /* any other failure; message says what */
  ONNX_REINIT_INVALID_ARGUMENT = 2, /* parameters, or a tensor the strategy cannot fill */
  ONNX_REINIT_OUT_OF_MEMORY = 3,
  ONNX_REINIT_UNKNOWN = 4, /* target_moments only: the strategy cannot say (not an error) */
} onnx_reinit_status;

/* Element types, numbered as onnx_reinit::element_type. Fill buffers are only
 * ever FLOAT32 or FLOAT64. */
typedef enum onnx_reinit_dtype {
  ONNX_REINIT_FLOAT32 = 1,
  ONNX_REINIT_FLOAT64 = 2,
  ONNX_REINIT_FLOAT16 = 3,
  ONNX_REINIT_BFLOAT16 = 4,
} onnx_reinit_dtype;

ONNX_REINIT_ABI_PIN(ONNX_REINIT_OK == 0 && ONNX_REINIT_ERROR == 1 &&
                    ONNX_REINIT_INVALID_ARGUMENT == 2 && ONNX_REINIT_OUT_OF_MEMORY == 3 &&
                    ONNX_REINIT_UNKNOWN == 4);
ONNX_REINIT_ABI_PIN(ONNX_REINIT_FLOAT32 == 1 && ONNX_REINIT_FLOAT64 == 2 &&
                    ONNX_REINIT_FLOAT16 == 3 && ONNX_REINIT_BFLOAT16 == 4);

/* Tensor roles (onnx_reinit_tensor_info::role), numbered as
 * onnx_reinit::tensor_role (sdk/tensor_info.h says what each means). */
typedef enum onnx_reinit_role {
  ONNX_REINIT_ROLE_UNKNOWN = 0,
  ONNX_REINIT_ROLE_WEIGHT = 1,
  ONNX_REINIT_ROLE_RECURRENT_WEIGHT = 2,
  ONNX_REINIT_ROLE_BIAS = 3,
  ONNX_REINIT_ROLE_NORM_SCALE = 4,
  ONNX_REINIT_ROLE_NORM_BIAS = 5,
  ONNX_REINIT_ROLE_RUNNING_MEAN = 6,
  ONNX_REINIT_ROLE_RUNNING_VAR = 7,
  ONNX_REINIT_ROLE_EMBEDDING = 8,
  ONNX_REINIT_ROLE_PRELU_SLOPE = 9,
} onnx_reinit_role;

/* The activation after a tensor's layer (onnx_reinit_tensor_info::
 * activation), numbered as onnx_reinit::activation_kind. */
typedef enum onnx_reinit_activation {
  ONNX_REINIT_ACT_LINEAR = 0,
  ONNX_REINIT_ACT_RELU = 1,
  ONNX_REINIT_ACT_RELU6 = 2,
  ONNX_REINIT_ACT_LEAKY_RELU = 3,
  ONNX_REINIT_ACT_PRELU = 4,
  ONNX_REINIT_ACT_ELU = 5,
  ONNX_REINIT_ACT_SELU = 6,
  ONNX_REINIT_ACT_GELU = 7,
  ONNX_REINIT_ACT_SILU = 8,
  ONNX_REINIT_ACT_HARDSWISH = 9,
  ONNX_REINIT_ACT_MISH = 10,
  ONNX_REINIT_ACT_SOFTPLUS = 11,
  ONNX_REINIT_ACT_SIGMOID = 12,
  ONNX_REINIT_ACT_HARDSIGMOID = 13,
  ONNX_REINIT_ACT_TANH = 14,
} onnx_reinit_activation;

/* Each value above is written out; the host pins its enums to these names
 * (core/registry/configured_strategy.cpp). Values are only ever appended. */
ONNX_REINIT_ABI_PIN(ONNX_REINIT_ROLE_PRELU_SLOPE == 9 && ONNX_REINIT_ACT_TANH == 14);

/* ---- Parameters ---------------------------------------------------------- */

typedef enum onnx_reinit_param_type {
  ONNX_REINIT_PARAM_FLOAT = 0,  /* a double */
  ONNX_REINIT_PARAM_INT = 1,    /* an integer, carried in a double */
  ONNX_REINIT_PARAM_BOOL = 2,   /* 0 or 1, carried in a double */
  ONNX_REINIT_PARAM_CHOICE = 3, /* one of a '|'-separated list of words */
} onnx_reinit_param_type;

/* Range flags for onnx_reinit_param_schema::range_flags. */
#define ONNX_REINIT_RANGE_MIN_EXCLUSIVE 1u
#define ONNX_REINIT_RANGE_MAX_EXCLUSIVE 2u

ONNX_REINIT_ABI_PIN(ONNX_REINIT_PARAM_FLOAT == 0 && ONNX_REINIT_PARAM_INT == 1 &&
                    ONNX_REINIT_PARAM_BOOL == 2 && ONNX_REINIT_PARAM_CHOICE == 3);
ONNX_REINIT_ABI_PIN(ONNX_REINIT_RANGE_MIN_EXCLUSIVE == 1u && ONNX_REINIT_RANGE_MAX_EXCLUSIVE == 2u);

typedef struct onnx_reinit_param_schema {
  const char* name;
  uint32_t type;         /* onnx_reinit_param_type */
  uint32_t range_flags;  /* ONNX_REINIT_RANGE_* */
  double default_number; /* FLOAT, INT, BOOL */
  double min_value;      /* FLOAT, INT: -HUGE_VAL for none */
  double max_value;      /* FLOAT, INT: HUGE_VAL for none */
  const char* choices;   /* CHOICE: "fan_in|fan_out|fan_avg" */
  const char* default_choice;
  const char* help;
} onnx_reinit_param_schema;

/* One validated parameter value. The host passes every parameter of the
 * schema, in schema order, defaults filled in. */
typedef struct onnx_reinit_param_value {
  const char* name;
  double number;      /* FLOAT, INT, BOOL */
  const char* choice; /* CHOICE; NULL otherwise */
} onnx_reinit_param_value;

/* ---- Tensors ------------------------------------------------------------- */

/* Mirrors onnx_reinit::tensor_info (tensor_info.h). Enum fields carry the
 * numeric values of onnx_reinit::tensor_role / activation_kind. */
typedef struct onnx_reinit_tensor_info {
  uint32_t struct_size;
  const char* name;
  const int64_t* shape;
  uint32_t rank;
  uint32_t dtype;
  uint32_t role;
  uint32_t activation;
  double activation_param;
  double gain;
  double fan_in;
  double fan_out;
  double receptive_field;
  int64_t groups;
  int64_t gate_count;
  int64_t block_count;
  int64_t block_rows;
  int64_t block_cols;
} onnx_reinit_tensor_info;

/* The end of the last field of this ABI version's layout: smaller is an
 * error, larger is a newer host's struct whose extra fields are ignored. */
#define ONNX_REINIT_TENSOR_INFO_MIN_SIZE \
  (offsetof(onnx_reinit_tensor_info, block_cols) + sizeof(int64_t))

/* A piece of a tensor to fill: `count` elements of `dtype` (FLOAT32 or
 * FLOAT64) starting at element index `first` of the whole tensor. */
typedef struct onnx_reinit_span {
  void* data;
  uint64_t first;
  uint64_t count;
  uint32_t dtype;
} onnx_reinit_span;

/* ---- Random streams (provided by the host) -------------------------------- */

struct onnx_reinit_rng_api;

/* A counter-based Philox4x32-10 stream. `key` is derived from the seed and
 * the tensor name (rng.h documents how); `stream` separates independent
 * sequences for the same tensor (e.g. values and positions). */
typedef struct onnx_reinit_rng {
  uint32_t key[2];
  uint64_t stream;
  const struct onnx_reinit_rng_api* api;
} onnx_reinit_rng;

/* Fills `out` with values whose element i depends only on (key, stream,
 * out->first + i), so any chunking gives the same bytes. Truncated normal
 * bounds `a`, `b` are in units of `std` around `mean`. */
typedef struct onnx_reinit_rng_api {
  uint32_t struct_size;
  void (*uniform)(const onnx_reinit_rng* rng, const onnx_reinit_span* out, double low, double high);
  void (*normal)(const onnx_reinit_rng* rng, const onnx_reinit_span* out, double mean, double std);
  void (*truncated_normal)(const onnx_reinit_rng* rng, const onnx_reinit_span* out, double mean,
                           double std, double a, double b);
  /* Appended; absent (outside struct_size, or null): the plugin runs the
   * loop itself. Calls body(context, i) for every i in [0, count), on the
   * host's threads (as many as the run may use, shared with the host's own
   * parallel loops), and returns when every call has returned. `body` must
   * not throw or unwind, and call i must touch only its own data. */
  void (*parallel_for)(uint64_t count, void (*body)(void* context, uint64_t index), void* context);
} onnx_reinit_rng_api;

#define ONNX_REINIT_RNG_API_MIN_SIZE \
  (offsetof(onnx_reinit_rng_api, truncated_normal) + sizeof(void (*)(void)))

/* ---- Strategies and the plugin descriptor --------------------------------- */

/* Element i of the result depends only on i and the random stream, never on
 * other elements: the host may fill one tensor in chunks, in parallel. */
#define ONNX_REINIT_STRATEGY_ELEMENTWISE 1u
ONNX_REINIT_ABI_PIN(ONNX_REINIT_STRATEGY_ELEMENTWISE == 1u);

/* One entry of the plugin's strategy array. The array's stride is the first
 * entry's struct_size and every entry must have the same one, so a plugin
 * built against a newer SDK (a larger struct) still loads. */
typedef struct onnx_reinit_strategy_desc {
  uint32_t struct_size; /* sizeof(onnx_reinit_strategy_desc) */
  const char* name;     /* unique across all plugins, [a-z0-9_]+ */
  const char* summary;  /* one line */
  const char* formula;  /* e.g. "U(-b, b), b = gain * sqrt(6 / (fan_in + fan_out))" */
  const onnx_reinit_param_schema* params;
  uint32_t param_count;
  uint32_t flags; /* ONNX_REINIT_STRATEGY_* */
  /* Creates a configured instance from validated values (all of them, schema
   * order). May still refuse combinations (e.g. low >= high). */
  int (*create)(const onnx_reinit_param_value* values, uint32_t value_count, void** instance,
                char* error, size_t error_size);
  void (*destroy)(void* instance);
  /* Fills `out`. For strategies without the ELEMENTWISE flag the host always
   * passes the whole tensor (first == 0, count == element count).
   * Called CONCURRENTLY on one instance (see THREADS above): across tensors,
   * and across chunks of one tensor for ELEMENTWISE strategies. */
  int (*fill)(const void* instance, const onnx_reinit_tensor_info* tensor,
              const onnx_reinit_rng* rng, const onnx_reinit_span* out, char* error,
              size_t error_size);
  /* Optional (may be NULL): the mean and standard deviation the strategy
   * aims at for this tensor, for reports. Returns ONNX_REINIT_OK when known,
   * ONNX_REINIT_UNKNOWN when the strategy cannot say, any other status (with
   * a message in `error`) when it failed; the host reports failures. Called
   * concurrently, like fill. */
  int (*target_moments)(const void* instance, const onnx_reinit_tensor_info* tensor, double* mean,
                        double* std, char* error, size_t error_size);
} onnx_reinit_strategy_desc;

#define ONNX_REINIT_STRATEGY_DESC_MIN_SIZE \
  (offsetof(onnx_reinit_strategy_desc, target_moments) + sizeof(void (*)(void)))

typedef struct onnx_reinit_plugin_desc {
  uint32_t abi_version; /* ONNX_REINIT_ABI_VERSION */
  uint32_t struct_size; /* sizeof(onnx_reinit_plugin_desc) */
  const char* plugin_id;
  const char* plugin_version;
  const onnx_reinit_strategy_desc* strategies;
  uint32_t strategy_count;
} onnx_reinit_plugin_desc;

/* The end of the first released descriptor's last field: the host refuses
 * a smaller struct_size (abi_mismatch) and reads no more than struct_size
 * bytes, so a field appended later does not refuse older plugins. */
#define ONNX_REINIT_PLUGIN_DESC_MIN_SIZE \
  (offsetof(onnx_reinit_plugin_desc, strategy_count) + sizeof(uint32_t))

/* The first released layouts, on LP64 targets: appending fields leaves
 * these sizes as they are; changing them is an ABI break. */
#if defined(__LP64__)
ONNX_REINIT_ABI_PIN(ONNX_REINIT_PLUGIN_DESC_MIN_SIZE == 36);
ONNX_REINIT_ABI_PIN(ONNX_REINIT_STRATEGY_DESC_MIN_SIZE == 80);
ONNX_REINIT_ABI_PIN(ONNX_REINIT_TENSOR_INFO_MIN_SIZE == 120);
ONNX_REINIT_ABI_PIN(ONNX_REINIT_RNG_API_MIN_SIZE == 32);
#endif

#ifdef __cplusplus
#define ONNX_REINIT_NOEXCEPT noexcept
#else
#define ONNX_REINIT_NOEXCEPT
#endif

typedef const onnx_reinit_plugin_desc* (*onnx_reinit_plugin_entry_fn)(void)ONNX_REINIT_NOEXCEPT;

/* The entry point every plugin defines (ONNX_REINIT_PLUGIN does it in C++).
 * Declared here so a definition with another type does not compile: in C++
 * it must be exactly
 *   extern "C" ONNX_REINIT_EXPORT const onnx_reinit_plugin_desc*
 *   onnx_reinit_plugin_entry(void) noexcept { ... } */
ONNX_REINIT_EXPORT const onnx_reinit_plugin_desc* onnx_reinit_plugin_entry(void)
    ONNX_REINIT_NOEXCEPT;

/* NOLINTEND(readability-identifier-naming) */

#ifdef __cplusplus
}
#endif

#endif /* ONNX_REINIT_PLUGIN_ABI_H */
