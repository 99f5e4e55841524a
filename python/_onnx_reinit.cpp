// The extension module behind the Python package `onnx_reinit`
// (docs/DESIGN.md section 15): the library's registry, sampler and pipeline
// for python/onnx_reinit/__init__.py, which gives them their Python shape.
// Models cross as serialized bytes or paths, never as C++ protos shared
// with Python's onnx (a rewritten model as a bytes object the library
// fills); the GIL is released while the library works; library
// errors become the package's exception classes, carrying the error class,
// message and `where`.
//   import onnx_reinit._onnx_reinit as ext
//   ext.init([plugin_dir], [])
//   ext.sample("kaiming_normal", [64, 32], 7, "fc.weight", "float32", {}, {"mode": "fan_in"})
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>
#include <sys/mman.h>
#include <tbb/global_control.h>

#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "onnx_reinit/errors.h"
#include "onnx_reinit/model_io.h"
#include "onnx_reinit/presets.h"
#include "onnx_reinit/random.h"
#include "onnx_reinit/registry.h"
#include "onnx_reinit/reinit.h"
#include "onnx_reinit/report.h"
#include "onnx_reinit/rules.h"
#include "onnx_reinit/runtime.h"
#include "onnx_reinit/version.h"

namespace py = pybind11;
namespace ori = onnx_reinit;

namespace {

// ---- Errors ------------------------------------------------------------------

// The package's exception classes (onnx_reinit/__init__.py defines them
// with their Python bases: ValueError, OSError, ...), looked up when an
// error is raised.
py::object error_class(const char* name) {
  return py::module_::import("onnx_reinit").attr(name);
}

// Raises `name` with the library's message and place: str(e) reads like the
// command's error line, e.where names the file, tensor or parameter.
void raise(const char* name, const ori::error& e) {
  py::object type = error_class(name);
  py::object value = type(std::string(e.what()), e.where());
  PyErr_SetObject(type.ptr(), value.ptr());
}

// Most specific class first.
void translate(std::exception_ptr p) {
  try {
    if (p) std::rethrow_exception(p);
  } catch (const ori::usage_error& e) {
    raise("UsageError", e);
  } catch (const ori::model_error& e) {
    raise("ModelError", e);
  } catch (const ori::external_data_error& e) {
    raise("ExternalDataError", e);
  } catch (const ori::io_error& e) {
    raise("IOError", e);
  } catch (const ori::unknown_strategy_error& e) {
    raise("UnknownStrategyError", e);
  } catch (const ori::param_error& e) {
    raise("ParamError", e);
  } catch (const ori::strategy_error& e) {
    raise("StrategyError", e);
  } catch (const ori::rule_error& e) {
    raise("RuleError", e);
  } catch (const ori::limit_error& e) {
    raise("LimitError", e);
  } catch (const ori::runtime_unavailable_error& e) {
    raise("RuntimeUnavailableError", e);
  } catch (const ori::runtime_error& e) {
    raise("OnnxRuntimeError", e);
  } catch (const ori::error& e) {
    raise("Error", e);
  }
}

// ---- The registry ------------------------------------------------------------

// One registry per process, loaded by init() (the package's plugin
// directory, ONNX_REINIT_PLUGIN_PATH) and load_plugins(); loading takes the
// lock exclusively, every use shares it, so a sample running without the
// GIL never sees a registry being loaded.
struct registry_holder {
  std::shared_mutex lock;
  ori::registry registry;
  std::vector<std::filesystem::path> files;
  std::vector<std::filesystem::path> dirs;
};

registry_holder& holder() {
  static registry_holder* h = new registry_holder;  // never destroyed: plugins stay loaded
  return *h;
}

// Discovers the registry: `dirs` (the package's plugin directory) and
// `files`, then ONNX_REINIT_PLUGIN_PATH; the executable is python, so the
// command's default directory does not apply. Returns the load errors.
// The GIL is released while waiting for the lock: a call holding it shared
// needs the GIL back to finish.
std::vector<py::dict> init(std::vector<std::filesystem::path> dirs,
                           std::vector<std::filesystem::path> files) {
  registry_holder& h = holder();
  std::vector<ori::plugin_load_error> load_errors;
  {
    py::gil_scoped_release release;
    std::unique_lock guard(h.lock);
    ori::discovery_options options;
    options.plugin_dirs = dirs;
    options.plugin_files = files;
    options.use_default_dir = false;
    h.registry = ori::registry::discover(options);
    h.dirs = std::move(dirs);
    h.files = std::move(files);
    load_errors = h.registry.load_errors();
  }
  std::vector<py::dict> errors;
  for (const ori::plugin_load_error& e : load_errors)
    errors.push_back(py::dict(py::arg("path") = e.path,
                              py::arg("kind") = std::string(to_string(e.kind)),
                              py::arg("message") = e.message));
  return errors;
}

std::string describe(const std::string& name) {
  registry_holder& h = holder();
  std::shared_lock guard(h.lock);
  return ori::describe_strategy(h.registry, name);
}

std::string list_text(bool as_json) {
  registry_holder& h = holder();
  std::shared_lock guard(h.lock);
  return ori::format_strategy_list(h.registry, as_json);
}

// Python values of a strategy's parameters: str (parsed like CLI text),
// bool, int or float.
ori::param_value_list param_values(const py::dict& params) {
  ori::param_value_list out;
  for (const auto& [key, value] : params) {
    const std::string name = py::str(key);
    if (py::isinstance<py::bool_>(value))
      out.emplace_back(name, value.cast<bool>());
    else if (py::isinstance<py::int_>(value))
      out.emplace_back(name, value.cast<std::int64_t>());
    else if (py::isinstance<py::float_>(value))
      out.emplace_back(name, value.cast<double>());
    else if (py::isinstance<py::str>(value))
      out.emplace_back(name, value.cast<std::string>());
    else
      throw ori::param_error(
          fmt::format("parameter '{}': expected str, bool, int or float, got {}", name,
                      std::string(py::str(py::type::of(value).attr("__name__")))),
          name);
  }
  return out;
}

// ---- sample ------------------------------------------------------------------

template <class T>
T get_or(const py::dict& d, const char* key, T fallback) {
  if (!d.contains(key) || d[key].is_none()) return fallback;
  return d[key].cast<T>();
}

// The tensor a strategy fills: shape and name, the fans (PyTorch's rule
// from the shape unless given), and whatever `info` (a plan record's
// fields) says of its role, activation and matrix view.
ori::tensor_info tensor_of(const std::string& name, const std::vector<std::int64_t>& shape,
                           ori::element_type dtype, const py::dict& info) {
  ori::tensor_info t;
  t.name = name;
  t.shape = shape;
  t.dtype = dtype;
  if (!ori::checked_product(shape))
    throw ori::usage_error(
        fmt::format("shape [{}]: a negative dim or too many elements", fmt::join(shape, ",")),
        name.empty() ? "sample" : name);
  t.set_default_blocks();
  double receptive = 1.0;
  for (std::size_t i = 2; i < shape.size(); ++i) receptive *= static_cast<double>(shape[i]);
  const double d0 = shape.empty() ? 1.0 : static_cast<double>(shape[0]);
  const double d1 = shape.size() < 2 ? d0 : static_cast<double>(shape[1]);
  t.receptive_field = get_or(info, "receptive_field", receptive);
  t.fan_in = get_or(info, "fan_in", d1 * receptive);
  t.fan_out = get_or(info, "fan_out", shape.size() < 2 ? d0 : d0 * receptive);
  t.groups = get_or<std::int64_t>(info, "groups", 1);
  t.gate_count = get_or<std::int64_t>(info, "gate_count", 1);
  t.block_count = get_or(info, "block_count", t.block_count);
  t.block_rows = get_or(info, "block_rows", t.block_rows);
  t.block_cols = get_or(info, "block_cols", t.block_cols);
  t.activation_param = get_or(info, "activation_param", 0.0);
  t.gain = get_or(info, "gain", 1.0);
  if (auto role = get_or<std::string>(info, "role", ""); !role.empty()) {
    auto parsed = ori::parse_tensor_role(role);
    if (!parsed) throw ori::usage_error(fmt::format("unknown role '{}'", role), name);
    t.role = *parsed;
  }
  if (auto act = get_or<std::string>(info, "activation", ""); !act.empty()) {
    auto parsed = ori::parse_activation_kind(act);
    if (!parsed) throw ori::usage_error(fmt::format("unknown activation '{}'", act), name);
    t.activation = *parsed;
  }
  return t;
}

ori::element_type parse_dtype(const std::string& dtype) {
  if (dtype == "float32") return ori::element_type::float32;
  if (dtype == "float64") return ori::element_type::float64;
  if (dtype == "float16") return ori::element_type::float16;
  if (dtype == "bfloat16") return ori::element_type::bfloat16;
  throw ori::usage_error(
      fmt::format("dtype '{}': expected float32, float64, float16 or bfloat16", dtype), "sample");
}

// NumPy's dtype for the stored bytes of `type`: NumPy has no bfloat16, so
// a bfloat16 tensor comes back as its raw bits, uint16 (ONNX stores it so).
py::dtype numpy_dtype(ori::element_type type) {
  switch (type) {
    case ori::element_type::float64:
      return py::dtype("float64");
    case ori::element_type::float16:
      return py::dtype("float16");
    case ori::element_type::bfloat16:
      return py::dtype("uint16");
    default:
      return py::dtype("float32");
  }
}

// A strategy parameter as the text a rule gives it (the planner's form):
// numbers in their shortest exact form, so the value is the same.
std::string param_text(const ori::param_value& v) {
  return std::visit(
      [](const auto& x) -> std::string {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, bool>)
          return x ? "true" : "false";
        else if constexpr (std::is_same_v<T, std::string>)
          return x;
        else
          return fmt::format("{}", x);
      },
      v);
}

// The host adjustments of a plan record ("adjustments": name, value and
// element ranges, as plan() gives them).
std::vector<ori::host_adjustment> adjustments_of(const py::dict& info) {
  std::vector<ori::host_adjustment> out;
  if (!info.contains("adjustments") || info["adjustments"].is_none()) return out;
  for (const py::handle& a : info["adjustments"]) {
    const py::dict d = py::reinterpret_borrow<py::dict>(a);
    ori::host_adjustment h;
    h.name = d["name"].cast<std::string>();
    h.value = d["value"].cast<double>();
    h.elements = d["elements"].cast<std::vector<std::pair<std::int64_t, std::int64_t>>>();
    out.push_back(std::move(h));
  }
  return out;
}

// The values the tool writes for a tensor of this name and shape under
// `seed`: the library's sampler (sample_tensor) fills the NumPy array in
// place from the tensor's Philox stream (docs/DESIGN.md section 4), applies
// the plan's host adjustments given in `info` (the forget-gate bias) and
// rounds to the dtype as the writer does.
py::array sample(const std::string& strategy, const std::vector<std::int64_t>& shape,
                 std::uint64_t seed, const std::string& name, const std::string& dtype,
                 const py::dict& info, const py::dict& params) {
  const ori::element_type type = parse_dtype(dtype);
  ori::tensor_plan plan;
  plan.tensor.info = tensor_of(name, shape, type, info);
  plan.tensor.is_float = true;
  plan.action = ori::plan_action::rewrite;
  plan.call.strategy = strategy;
  for (const auto& [key, value] : param_values(params))
    plan.call.params.emplace_back(key, param_text(value));
  plan.adjustments = adjustments_of(info);
  py::array out(numpy_dtype(type), shape);
  const std::span<std::byte> bytes(static_cast<std::byte*>(out.mutable_data()),
                                   static_cast<std::size_t>(out.nbytes()));
  {
    registry_holder& h = holder();
    std::shared_lock guard(h.lock);
    py::gil_scoped_release release;
    ori::sample_tensor(plan, h.registry, seed, bytes);
  }
  return out;
}

// ---- The pipeline (reinit.h) ---------------------------------------------------

// ONNX's names of NumPy's dtypes, as runtime_input::dtype names them.
std::string onnx_dtype(const py::dtype& d) {
  const char kind = d.kind();
  const auto size = d.itemsize();
  if (kind == 'b') return "bool";
  if (kind == 'f') return size == 2 ? "float16" : size == 4 ? "float" : size == 8 ? "double" : "";
  if (kind == 'i') return size == 1 ? "int8" : size == 2 ? "int16" : size == 4 ? "int32" : "int64";
  if (kind == 'u')
    return size == 1 ? "uint8" : size == 2 ? "uint16" : size == 4 ? "uint32" : "uint64";
  return "";
}

// The batch in memory: each array's elements, C order, little-endian.
std::map<std::string, ori::input_array> input_arrays(const py::dict& data) {
  std::map<std::string, ori::input_array> out;
  for (const auto& [key, value] : data) {
    const std::string name = py::str(key);
    auto array = py::array::ensure(value, py::array::c_style);
    if (!array) throw ori::usage_error("data: not an array", name);
    ori::input_array a;
    a.dtype = onnx_dtype(array.dtype());
    if (a.dtype.empty())
      throw ori::usage_error(
          fmt::format("data: dtype {} has no ONNX type", std::string(py::str(array.dtype()))),
          name);
    a.shape.assign(array.shape(), array.shape() + array.ndim());
    const auto* first = static_cast<const std::byte*>(array.data());
    a.bytes.assign(first, first + array.nbytes());
    out.emplace(name, std::move(a));
  }
  return out;
}

// policy=: None ("") is the command's default (signal); a name is the
// library's to check, with the error pointing at the keyword.
ori::init_policy policy_of(const std::string& policy) {
  if (policy.empty()) return ori::reinit_options{}.policy;
  try {
    return ori::parse_init_policy(policy);
  } catch (const ori::usage_error&) {
    throw ori::usage_error(fmt::format("policy '{}': expected 'signal' or 'textbook'", policy),
                           "policy");
  }
}

// reinit_options from the dict python/onnx_reinit/__init__.py builds (its
// _options, which checks types and choices).
ori::reinit_options options_of(const py::dict& d) {
  ori::reinit_options o;
  o.seed = d["seed"].cast<std::uint64_t>();
  o.threads = d["threads"].cast<unsigned>();
  o.convention = d["fan_convention"].cast<std::string>() == "torch" ? ori::fan_convention::torch
                                                                    : ori::fan_convention::semantic;
  o.rules = d["rules"].cast<std::vector<std::string>>();
  o.rules_file = d["rules_file"].cast<std::string>();
  o.presets = d["presets"].cast<std::vector<std::string>>();
  o.only = d["only"].cast<std::vector<std::string>>();
  o.skip = d["skip"].cast<std::vector<std::string>>();
  o.requantize = d["requantize"].cast<bool>();
  o.from = d["from"].cast<std::string>();
  o.maps = d["maps"].cast<std::vector<std::string>>();
  o.calibrate = d["calibrate"].cast<std::string>();
  o.data_dir = d["data_dir"].cast<std::string>();
  o.data = input_arrays(d["data"].cast<py::dict>());
  o.input_shapes = d["input_shapes"].cast<std::map<std::string, std::vector<std::int64_t>>>();
  o.policy = policy_of(d["policy"].cast<std::string>());
  if (d.contains("output_rms")) o.output_rms = d["output_rms"].cast<double>();
  if (d.contains("lsuv_tol")) o.lsuv_tolerance = d["lsuv_tol"].cast<double>();
  if (d.contains("batch")) o.batch = d["batch"].cast<std::int64_t>();
  if (d.contains("max_tensor_bytes"))
    o.load.max_tensor_bytes = d["max_tensor_bytes"].cast<std::uint64_t>();
  if (d.contains("max_total_bytes"))
    o.load.max_total_bytes = d["max_total_bytes"].cast<std::uint64_t>();
  return o;
}

// A model given as bytes (an onnx.ModelProto serialized by the caller, or
// any buffer): read without a copy from the Python object, which the call
// keeps alive, while the GIL is released; external data cannot be resolved
// (no directory), as the library says.
constexpr const char* memory_model_name = "<memory>";

// The bytes of a buffer argument (bytes, bytearray, memoryview: C-contiguous).
struct model_bytes {
  std::optional<py::buffer_info> info;
  explicit model_bytes(const std::optional<py::buffer>& b) {
    if (b) info.emplace(b->request());
    if (info && !PyBuffer_IsContiguous(info->view(), 'C'))
      throw ori::usage_error("model: a buffer that is not contiguous", "model");
  }
  std::span<const std::byte> span() const {
    if (!info) return {};
    return {static_cast<const std::byte*>(info->ptr),
            static_cast<std::size_t>(info->size * info->itemsize)};
  }
};

// What the library does with one model, without the GIL; `run` receives
// the plan. `bytes` or `path` names the model.
template <class Run>
auto with_plan(const std::optional<py::buffer>& bytes, const std::optional<std::string>& path,
               const ori::reinit_options& options, Run run) {
  registry_holder& h = holder();
  std::shared_lock guard(h.lock);
  const model_bytes raw(bytes);
  py::gil_scoped_release release;
  std::optional<tbb::global_control> limit;
  if (options.threads > 0)
    limit.emplace(tbb::global_control::max_allowed_parallelism, std::size_t{options.threads});
  if (path) return run(ori::plan_reinit(*path, options, h.registry));
  ori::loaded_model model =
      ori::load_model_from_bytes(raw.span(), memory_model_name, {}, options.load);
  return run(ori::plan_reinit(std::move(model), memory_model_name, options, h.registry));
}

// What the analysis knows beyond the JSON plan: the matrix view a strategy
// reads (so sample() can reproduce a tensor exactly).
py::dict tensor_extra(const ori::tensor_plan& p) {
  const ori::tensor_info& t = p.tensor.info;
  py::dict d;
  d["receptive_field"] = t.receptive_field;
  d["groups"] = t.groups;
  d["gate_count"] = t.gate_count;
  d["block_count"] = t.block_count;
  d["block_rows"] = t.block_rows;
  d["block_cols"] = t.block_cols;
  // The host parameters' values and where they go (sample() applies them).
  py::list adjustments;
  for (const ori::host_adjustment& a : p.adjustments)
    adjustments.append(py::dict(py::arg("name") = a.name, py::arg("value") = a.value,
                                py::arg("elements") = a.elements));
  d["adjustments"] = adjustments;
  return d;
}

struct plan_texts {
  std::string report_json;
  std::string table;
  std::vector<py::dict> info;  // filled with the GIL
  std::vector<ori::tensor_plan> plans;
};

py::dict plan(std::optional<py::buffer> bytes, std::optional<std::string> path,
              const py::dict& options_dict) {
  const ori::reinit_options options = options_of(options_dict);
  ori::check_reinit_options(options, false, true);
  plan_texts texts = with_plan(bytes, path, options, [](ori::reinit_plan p) {
    plan_texts t;
    t.report_json = p.report_json();
    t.table = ori::plan_table(p.plans, p.preview(), false);
    if (p.header.transfer) t.table += ori::transfer_text(*p.header.transfer);
    t.plans = std::move(p.plans);
    return t;
  });
  py::dict out;
  out["report_json"] = texts.report_json;
  out["plan_table"] = texts.table;
  std::vector<py::dict> info;
  for (const ori::tensor_plan& p : texts.plans) info.push_back(tensor_extra(p));
  out["info"] = info;
  return out;
}

// A bytes object of `size` bytes for the library to fill (its contents
// uninitialised until then): the serialized model is written once, into
// the object Python receives. Called without the GIL.
std::span<std::byte> new_bytes(py::object& holder, std::size_t size) {
  py::gil_scoped_acquire gil;
  PyObject* b = PyBytes_FromStringAndSize(nullptr, static_cast<Py_ssize_t>(size));
  if (b == nullptr) {
    PyErr_Clear();
    throw std::bad_alloc();
  }
  holder = py::reinterpret_steal<py::object>(b);
  auto* data = reinterpret_cast<std::byte*>(PyBytes_AS_STRING(b));
  // Huge pages for the buffer's whole 2 MiB pages, where the kernel gives
  // them on request: a large model is written into fresh memory, and a
  // fault per 4 KiB page is most of the writer's system time. Advice only.
  constexpr std::uintptr_t huge = std::uintptr_t{2} << 20;
  const auto first = (reinterpret_cast<std::uintptr_t>(data) + huge - 1) & ~(huge - 1);
  const auto last = (reinterpret_cast<std::uintptr_t>(data) + size) & ~(huge - 1);
  if (last > first) ::madvise(reinterpret_cast<void*>(first), last - first, MADV_HUGEPAGE);
  return {data, size};
}

// Writes the rewritten model to `output` exactly as the command's -o does,
// or, with no output, returns its bytes ("model"): the library writes them
// into a Python bytes object (reinit_output::memory), no file and no other
// copy. A model with external data cannot be written to memory: it is
// written into `scratch` (a fresh directory) and its path returned ("path").
py::dict reinit(std::optional<py::buffer> bytes, std::optional<std::string> path,
                const py::dict& options_dict, const std::string& output,
                const std::string& external_data, bool in_place, bool measure,
                const std::string& scratch) {
  const ori::reinit_options options = options_of(options_dict);
  ori::check_reinit_options(options, true);
  ori::check_transfer_options(options, output);
  py::object model;  // the bytes object, created (with the GIL) by the sink
  std::string written;
  std::string report = with_plan(bytes, path, options, [&](ori::reinit_plan p) {
    ori::reinit_output out;
    out.external_data = external_data;
    out.in_place = in_place;
    if (!output.empty())
      out.path = output;
    else if (p.model.has_external_data() || !external_data.empty())
      out.path = written = std::filesystem::path(scratch) / "model.onnx";
    else
      out.memory = [&model](std::size_t size) { return new_bytes(model, size); };
    // The report's achieved figures cost a pass over the written bytes:
    // only when the caller asked for the report (the command skips it
    // with -q and no --report too).
    out.measure = measure;
    return ori::execute_reinit(p, out).report_json;
  });
  py::dict out;
  out["report_json"] = report;
  if (model) out["model"] = model;
  if (!written.empty()) out["path"] = written;
  return out;
}

std::string inspect(std::optional<py::buffer> bytes, std::optional<std::string> path,
                    const py::dict& options_dict) {
  ori::reinit_options options = options_of(options_dict);
  options.inspect = true;
  ori::check_reinit_options(options, false);
  const model_bytes raw(bytes);
  py::gil_scoped_release release;
  const ori::loaded_model model =
      path ? ori::load_model(*path, options.load)
           : ori::load_model_from_bytes(raw.span(), memory_model_name, {}, options.load);
  return ori::inspection_json(ori::inspect_reinit(model, options));
}

}  // namespace

PYBIND11_MODULE(_onnx_reinit, m) {
  m.doc() = "The onnx-reinit library; use the package onnx_reinit, not this module.";
  py::register_exception_translator(&translate);
  m.attr("__version__") = std::string(ori::tool_version);
  m.def("init", &init, py::arg("dirs"), py::arg("files"));
  m.def("describe", &describe, py::arg("name"));
  m.def("list_text", &list_text, py::arg("as_json"));
  m.def("policy_text", &ori::policy_text);
  m.def("presets_text", &ori::presets_text);
  m.def("runtime_available", &ori::runtime_available);
  m.def("plan", &plan, py::arg("bytes"), py::arg("path"), py::arg("options"));
  m.def("reinit", &reinit, py::arg("bytes"), py::arg("path"), py::arg("options"), py::arg("output"),
        py::arg("external_data"), py::arg("in_place"), py::arg("measure"), py::arg("scratch"));
  m.def("inspect", &inspect, py::arg("bytes"), py::arg("path"), py::arg("options"));
  m.def("sample", &sample, py::arg("strategy"), py::arg("shape"), py::arg("seed"), py::arg("name"),
        py::arg("dtype"), py::arg("info"), py::arg("params"));
}
