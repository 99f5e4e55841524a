// Tests of the standard strategy plugin, driven through the C descriptors
// (create / fill / destroy trampolines) with the host RNG: distributions
// against the formulas, orthogonality, exact structures, chunking, errors.
#include <fmt/format.h>

#include <dlfcn.h>
#include <hwy/targets.h>
#include <tbb/global_control.h>
#include <tbb/task_arena.h>
#include <catch2/catch.hpp>

#include <boost/math/special_functions/beta.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <functional>
#include <latch>
#include <map>
#include <memory>
#include <numbers>
#include <numeric>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "onnx_reinit/random.h"
#include "onnx_reinit/sdk.h"
#include "standard_strategies.h"
#include "strategy_lists.h"

using namespace onnx_reinit;

namespace {

constexpr std::uint64_t seed = 20240611;

// ---- Driving strategies through the C descriptor ---------------------------

const onnx_reinit_strategy_desc& find_strategy(std::string_view name) {
  for (const onnx_reinit_strategy_desc& d : standard::standard_strategies())
    if (d.name != nullptr && name == d.name) return d;
  throw std::runtime_error("no standard strategy " + std::string(name));
}

using overrides = std::vector<std::pair<std::string, std::string>>;

struct fill_result {
  int status = ONNX_REINIT_OK;
  std::string error;
};

// One strategy instance, created from the schema defaults plus `overrides`
// (numbers as text) and destroyed through the descriptor.
class instance {
 public:
  instance(std::string_view name, const overrides& changes) : desc_(&find_strategy(name)) {
    choices_.reserve(desc_->param_count);  // stable pointers for `choice`
    std::vector<onnx_reinit_param_value> values;
    for (std::uint32_t i = 0; i < desc_->param_count; ++i) {
      const onnx_reinit_param_schema& s = desc_->params[i];
      onnx_reinit_param_value v{s.name, s.default_number, nullptr};
      auto it = std::find_if(changes.begin(), changes.end(),
                             [&](const auto& c) { return c.first == s.name; });
      bool is_choice = s.type == ONNX_REINIT_PARAM_CHOICE;
      if (is_choice) choices_.push_back(it != changes.end() ? it->second : s.default_choice);
      if (is_choice) v.choice = choices_.back().c_str();
      if (!is_choice && it != changes.end()) v.number = std::stod(it->second);
      values.push_back(v);
    }
    char error[512] = "";
    status_ = desc_->create(values.data(), static_cast<std::uint32_t>(values.size()), &handle_,
                            error, sizeof error);
    error_ = error;
  }
  ~instance() {
    if (handle_ != nullptr) desc_->destroy(handle_);
  }
  instance(const instance&) = delete;
  instance& operator=(const instance&) = delete;

  int status() const { return status_; }
  const std::string& error() const { return error_; }

  // `api`: another RNG API table than the host's (null: the host's).
  template <class T>
  fill_result fill(const tensor_info& t, std::uint64_t first, std::span<T> out,
                   std::uint64_t rng_seed = seed, std::uint32_t dtype = dtype_code<T>(),
                   const onnx_reinit_rng_api* api = nullptr) const {
    // No Catch assertion here: the concurrency tests call fill from several
    // threads, and Catch's assertion handler is not thread-safe.
    if (status_ != ONNX_REINIT_OK)
      return {status_, fmt::format("the strategy was not created: {}", error_)};
    onnx_reinit_tensor_info c = to_c(t);
    onnx_reinit_rng rng = make_tensor_rng(rng_seed, t.name);
    if (api != nullptr) rng.api = api;
    onnx_reinit_span span{out.data(), first, out.size(), dtype};
    char error[512] = "";
    fill_result r;
    r.status = desc_->fill(handle_, &c, &rng, &span, error, sizeof error);
    r.error = error;
    return r;
  }

 private:
  const onnx_reinit_strategy_desc* desc_;
  std::vector<std::string> choices_;
  void* handle_ = nullptr;
  int status_ = ONNX_REINIT_ERROR;
  std::string error_;
};

tensor_info make_tensor(std::string name, std::vector<std::int64_t> shape, double fan_in,
                        double fan_out, std::int64_t groups = 1) {
  tensor_info t;
  t.name = std::move(name);
  t.shape = std::move(shape);
  t.role = tensor_role::weight;
  t.fan_in = fan_in;
  t.fan_out = fan_out;
  t.groups = groups;
  t.set_default_blocks();
  return t;
}

// The whole tensor as float (as the host fills float32 models); fails the
// test on an error.
template <class T = float>
std::vector<T> fill_whole(std::string_view name, const overrides& o, const tensor_info& t,
                          std::uint64_t rng_seed = seed) {
  instance s(name, o);
  INFO(s.error());
  REQUIRE(s.status() == ONNX_REINIT_OK);
  std::vector<T> out(static_cast<std::size_t>(t.element_count()));
  fill_result r = s.fill(t, 0, std::span<T>(out), rng_seed);
  INFO(r.error);
  REQUIRE(r.status == ONNX_REINIT_OK);
  return out;
}

std::vector<double> as_double(const std::vector<float>& v) {
  return {v.begin(), v.end()};
}

// ---- The expected distributions ---------------------------------------------

enum class family { uniform, normal, truncated };

// uniform: U(center - spread, center + spread); normal: N(center, spread^2);
// truncated: N(center, spread^2) cut at [center + a spread, center + b spread].
struct expected {
  family kind;
  double center;
  double spread;
  double a = -2.0;
  double b = 2.0;
};

expected uniform_between(double low, double high) {
  return {family::uniform, (low + high) / 2, (high - low) / 2};
}

double phi(double z) {
  return std::exp(-z * z / 2) / std::sqrt(2 * M_PI);
}
double big_phi(double z) {
  return 0.5 * std::erfc(-z / std::sqrt(2.0));
}

// Raw moments E[z^k], k = 0..8, of N(0, 1) restricted to [a, b], by
// composite Simpson (error ~ h^4, far below what the tests resolve).
std::array<double, 9> truncated_raw_moments(double a, double b) {
  const int steps = 20000;
  const double h = (b - a) / steps;
  std::array<double, 9> m{};
  for (int i = 0; i <= steps; ++i) {
    double z = a + i * h, w = (i == 0 || i == steps) ? 1 : (i % 2 ? 4 : 2);
    for (int k = 0; k <= 8; ++k) m[k] += w * std::pow(z, k) * phi(z);
  }
  for (int k = 8; k >= 0; --k) m[k] /= m[0];
  return m;
}

// Mean, variance and standardized central moments 4, 6, 8 of a family.
struct moments {
  double mean, var, m4, m6, m8;
};

moments theory(const expected& e) {
  switch (e.kind) {
    case family::uniform:  // standardized U(-sqrt3, sqrt3): E z^2k = 3^k / (2k + 1)
      return {e.center, e.spread * e.spread / 3, 9.0 / 5, 27.0 / 7, 81.0 / 9};
    case family::normal:  // E z^2k = (2k - 1)!!
      return {e.center, e.spread * e.spread, 3, 15, 105};
    case family::truncated: {
      std::array<double, 9> r = truncated_raw_moments(e.a, e.b);
      double mu = r[1], c[9] = {};
      // Central moments from raw ones: E (z - mu)^k = sum C(k, j) r_j (-mu)^(k-j).
      for (int k = 0; k <= 8; ++k)
        for (int j = 0; j <= k; ++j)
          c[k] += std::tgamma(k + 1) / (std::tgamma(j + 1) * std::tgamma(k - j + 1)) * r[j] *
                  std::pow(-mu, k - j);
      double v = c[2];
      return {e.center + e.spread * mu, e.spread * e.spread * v, c[4] / (v * v), c[6] / (v * v * v),
              c[8] / (v * v * v * v)};
    }
  }
  return {};
}

double cdf(const expected& e, double x) {
  double z = (x - e.center) / e.spread;
  switch (e.kind) {
    case family::uniform:
      return std::clamp((z + 1) / 2, 0.0, 1.0);
    case family::normal:
      return big_phi(z);
    case family::truncated:
      return std::clamp((big_phi(z) - big_phi(e.a)) / (big_phi(e.b) - big_phi(e.a)), 0.0, 1.0);
  }
  return 0;
}

struct verdict {
  bool ok = true;
  std::string detail;
  void fail(const std::string& what) {
    ok = false;
    detail += what + "; ";
  }
};

// Checks a sample against `e`, every tolerance derived from n (all ~6 sigma,
// so a false alarm is ~1e-9 per check and the fixed seeds make it moot):
//  - mean: SE = sigma / sqrt(n).
//  - variance: Var(s^2) ~ (mu4 - sigma^4) / n = sigma^4 (kurt - 1) / n; for a
//    normal this is the familiar sigma^2 sqrt(2 / (n - 1)).
//  - kurtosis b2 = m4 / m2^2: by the delta method, for a symmetric law with
//    standardized moments mu4, mu6, mu8,
//      n Var(b2) ~ mu8 - mu4^2 - 4 mu4 (mu6 - mu4) + 4 mu4^2 (mu4 - 1),
//    which is 24 for the normal. This is what separates the families:
//    uniform 1.8, truncated at +-2 about 2.36, normal 3.
//  - KS: by the DKW inequality P(D > eps) <= 2 exp(-2 n eps^2), so
//    eps = sqrt(ln(2 / 1e-9) / (2 n)) is exceeded with probability <= 1e-9.
//  - support: uniform and truncated values never leave their interval
//    (slack of 1e-6 relative for rounding to float).
verdict check_sample(const std::vector<double>& x, const expected& e) {
  const double n = static_cast<double>(x.size());
  const moments th = theory(e);
  verdict v;
  double mean = std::accumulate(x.begin(), x.end(), 0.0) / n;
  double m2 = 0, m4 = 0;
  for (double xi : x) {
    double d = (xi - mean) * (xi - mean);
    m2 += d;
    m4 += d * d;
  }
  double var = m2 / (n - 1);
  double kurt = (m4 / n) / ((m2 / n) * (m2 / n));
  std::ostringstream msg;
  if (std::abs(mean - th.mean) > 6 * std::sqrt(th.var / n)) {
    msg << "mean " << mean << " vs " << th.mean;
    v.fail(msg.str());
  }
  double var_se = th.var * std::sqrt((th.m4 - 1) / n);
  if (std::abs(var - th.var) > 6 * var_se) {
    msg.str("");
    msg << "variance " << var << " vs " << th.var << " (se " << var_se << ")";
    v.fail(msg.str());
  }
  double kurt_var =
      th.m8 - th.m4 * th.m4 - 4 * th.m4 * (th.m6 - th.m4) + 4 * th.m4 * th.m4 * (th.m4 - 1);
  if (std::abs(kurt - th.m4) > 6 * std::sqrt(kurt_var / n)) {
    msg.str("");
    msg << "kurtosis " << kurt << " vs " << th.m4;
    v.fail(msg.str());
  }
  std::vector<double> sorted = x;
  std::sort(sorted.begin(), sorted.end());
  double d = 0;
  for (std::size_t i = 0; i < sorted.size(); ++i) {
    double f = cdf(e, sorted[i]);
    d = std::max({d, std::abs(f - i / n), std::abs(f - (i + 1) / n)});
  }
  if (d > std::sqrt(std::log(2 / 1e-9) / (2 * n))) v.fail("KS statistic " + std::to_string(d));
  if (e.kind != family::normal) {
    double lo = e.kind == family::uniform ? -1 : e.a, hi = e.kind == family::uniform ? 1 : e.b;
    double slack = 1e-6 * e.spread * std::max(std::abs(lo), std::abs(hi));
    if (sorted.front() < e.center + lo * e.spread - slack ||
        sorted.back() > e.center + hi * e.spread + slack)
      v.fail("value outside [" + std::to_string(e.center + lo * e.spread) + ", " +
             std::to_string(e.center + hi * e.spread) + "]");
  }
  return v;
}

void require_fits(const std::vector<float>& x, const expected& e) {
  verdict v = check_sample(as_double(x), e);
  INFO(v.detail);
  CHECK(v.ok);
}

// Keras/JAX: std of N(0, 1) cut at +-2.
constexpr double truncation_std = 0.87962566103423978;

// The shapes every fan-based strategy is checked on (fans as the analysis
// gives them, docs/DESIGN.md section 5).
std::vector<tensor_info> test_shapes() {
  return {
      make_tensor("dense", {256, 512}, 256, 512),
      make_tensor("conv", {64, 32, 3, 3}, 32 * 9, 64 * 9),
      // grouped conv, group 8, stride 2 x 1: fan_out = (M/g) rf / s
      make_tensor("grouped", {128, 16, 3, 3}, 16 * 9, 16 * 9 / 2.0, 8),
      // depthwise, stride 2 x 2: fractional fan_out
      make_tensor("depthwise", {512, 1, 3, 3}, 9, 9 / 4.0, 512),
  };
}

}  // namespace

// ---- Descriptor and schema --------------------------------------------------

TEST_CASE("standard plugin lists every strategy with complete metadata", "[standard]") {
  const auto& all = standard::standard_strategies();
  std::set<std::string> names;
  for (const onnx_reinit_strategy_desc& d : all) {
    REQUIRE(d.name != nullptr);
    INFO(d.name);
    names.insert(d.name);
    CHECK(std::string(d.name).find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_") ==
          std::string::npos);
    CHECK(d.summary != nullptr);
    CHECK(std::strlen(d.summary) > 0);
    CHECK(std::string(d.summary).find('\n') == std::string::npos);
    CHECK(std::strlen(d.formula) > 0);
    CHECK(d.create != nullptr);
    CHECK(d.fill != nullptr);
    CHECK(d.destroy != nullptr);
    for (std::uint32_t i = 0; i < d.param_count; ++i) {
      const onnx_reinit_param_schema& p = d.params[i];
      INFO(p.name);
      CHECK(std::strlen(p.help) > 0);
      if (p.type == ONNX_REINIT_PARAM_CHOICE) {
        std::string choices = std::string("|") + p.choices + "|";
        CHECK(choices.find(std::string("|") + p.default_choice + "|") != std::string::npos);
      } else {
        CHECK(p.default_number >= p.min_value);
        CHECK(p.default_number <= p.max_value);
      }
    }
    // Default parameters always create.
    instance s(d.name, {});
    INFO(s.error());
    CHECK(s.status() == ONNX_REINIT_OK);
  }
  CHECK(names == std::set<std::string>{"zeros", "ones", "constant", "uniform", "normal",
                                       "truncated_normal", "variance_scaling", "xavier_uniform",
                                       "xavier_normal", "kaiming_uniform", "kaiming_normal",
                                       "lecun_uniform", "lecun_normal", "torch_default",
                                       "orthogonal", "identity", "dirac", "sparse"});
  for (const char* structured : {"orthogonal", "identity", "dirac", "sparse"})
    CHECK((find_strategy(structured).flags & ONNX_REINIT_STRATEGY_ELEMENTWISE) == 0);
  for (const char* plain : {"zeros", "uniform", "variance_scaling", "torch_default"})
    CHECK((find_strategy(plain).flags & ONNX_REINIT_STRATEGY_ELEMENTWISE) != 0);
  CHECK(std::string(standard::plugin_version) == "0.1.0");
  CHECK(std::string(find_strategy("truncated_normal").formula).find("absolute") !=
        std::string::npos);
}

// ---- The statistical check itself -----------------------------------------

TEST_CASE("the statistical check rejects a wrong variance or family", "[standard][stats]") {
  CHECK(truncated_raw_moments(-2, 2)[2] == Approx(truncation_std * truncation_std).epsilon(1e-10));
  tensor_info t = make_tensor("w", {256, 128}, 256, 128);
  std::vector<double> x = as_double(fill_whole("normal", {{"std", "0.5"}}, t));
  CHECK(check_sample(x, {family::normal, 0, 0.5}).ok);
  // The variance off by a factor of 2 either way is rejected.
  CHECK_FALSE(check_sample(x, {family::normal, 0, 0.5 * std::sqrt(2.0)}).ok);
  CHECK_FALSE(check_sample(x, {family::normal, 0, 0.5 / std::sqrt(2.0)}).ok);
  // ... even with only the ~4.6k elements of a small conv weight.
  tensor_info small = make_tensor("c", {32, 16, 3, 3}, 144, 288);
  std::vector<double> y = as_double(fill_whole("kaiming_normal", {}, small));
  double s = std::sqrt(2.0) / std::sqrt(144.0);
  CHECK(check_sample(y, {family::normal, 0, s}).ok);
  CHECK_FALSE(check_sample(y, {family::normal, 0, s * std::sqrt(2.0)}).ok);
  CHECK_FALSE(check_sample(y, {family::normal, 0, s / std::sqrt(2.0)}).ok);
  // Same variance, wrong family: uniform and truncated are told from normal.
  std::vector<double> u = as_double(fill_whole("uniform", {{"low", "-1"}, {"high", "1"}}, t));
  CHECK(check_sample(u, uniform_between(-1, 1)).ok);
  CHECK_FALSE(check_sample(u, {family::normal, 0, 1 / std::sqrt(3.0)}).ok);
  std::vector<double> tn = as_double(fill_whole("truncated_normal", {}, t));
  CHECK(check_sample(tn, {family::truncated, 0, 1}).ok);
  CHECK_FALSE(check_sample(tn, {family::normal, 0, truncation_std}).ok);
  // And a mean shifted by a tenth of a std.
  CHECK_FALSE(check_sample(x, {family::normal, 0.05, 0.5}).ok);
}

// ---- Fixed distributions ------------------------------------------------------

TEST_CASE("zeros, ones and constant", "[standard]") {
  tensor_info t = make_tensor("b", {7, 5}, 5, 7);
  for (float v : fill_whole("zeros", {}, t)) CHECK(v == 0.0f);
  for (float v : fill_whole("ones", {}, t)) CHECK(v == 1.0f);
  for (double v : fill_whole<double>("constant", {{"value", "0.25"}}, t)) CHECK(v == 0.25);
  // Constants need no fans: an empty tensor or fan 0 is fine.
  tensor_info empty = make_tensor("e", {0, 4}, 0, 0);
  CHECK(fill_whole("constant", {{"value", "3"}}, empty).empty());
}

TEST_CASE("uniform, normal and truncated_normal", "[standard][stats]") {
  for (const tensor_info& t : test_shapes()) {
    INFO(t.name);
    require_fits(fill_whole("uniform", {{"low", "-0.5"}, {"high", "2"}}, t),
                 uniform_between(-0.5, 2));
    require_fits(fill_whole("normal", {{"mean", "1"}, {"std", "0.2"}}, t),
                 {family::normal, 1, 0.2});
    require_fits(fill_whole("truncated_normal", {{"mean", "-1"}, {"std", "0.3"}}, t),
                 {family::truncated, -1, 0.3});
    require_fits(fill_whole("truncated_normal", {{"std", "2"}, {"a", "-1"}, {"b", "3"}}, t),
                 {family::truncated, 0, 2, -1, 3});
  }
}

// ---- Fan-scaled strategies ----------------------------------------------------

namespace {

// The formulas as PyTorch / Keras compute them, independently of the plugin.
double keras_n(const tensor_info& t, const std::string& mode) {
  return mode == "fan_in" ? t.fan_in : mode == "fan_out" ? t.fan_out : (t.fan_in + t.fan_out) / 2;
}

expected variance_scaling_expected(const tensor_info& t, double scale, const std::string& mode,
                                   const std::string& dist) {
  double s = scale / keras_n(t, mode);
  if (dist == "uniform") return uniform_between(-std::sqrt(3.0 * s), std::sqrt(3.0 * s));
  if (dist == "untruncated_normal") return {family::normal, 0, std::sqrt(s)};
  return {family::truncated, 0, std::sqrt(s) / truncation_std};
}

}  // namespace

TEST_CASE("variance_scaling matches Keras for every mode and distribution", "[standard][stats]") {
  for (const tensor_info& t : test_shapes())
    for (std::string mode : {"fan_in", "fan_out", "fan_avg"})
      for (std::string dist : {"truncated_normal", "untruncated_normal", "uniform"}) {
        INFO(t.name << " " << mode << " " << dist);
        overrides o = {{"scale", "2"}, {"mode", mode}, {"distribution", dist}};
        std::vector<float> x = fill_whole("variance_scaling", o, t);
        expected e = variance_scaling_expected(t, 2.0, mode, dist);
        require_fits(x, e);
        // The final variance is scale / n whatever the distribution.
        CHECK(theory(e).var == Approx(2.0 / keras_n(t, mode)).epsilon(1e-9));
      }
}

TEST_CASE("xavier, kaiming, lecun and torch_default match their formulas", "[standard][stats]") {
  for (const tensor_info& t : test_shapes()) {
    INFO(t.name);
    double fi = t.fan_in, fo = t.fan_out;
    double xb = 1.5 * std::sqrt(6.0 / (fi + fo));
    require_fits(fill_whole("xavier_uniform", {{"gain", "1.5"}}, t), uniform_between(-xb, xb));
    require_fits(fill_whole("xavier_normal", {{"gain", "1.5"}}, t),
                 {family::normal, 0, 1.5 * std::sqrt(2.0 / (fi + fo))});
    // PyTorch defaults: leaky_relu with a = 0, i.e. gain sqrt(2), fan_in.
    double kb = std::sqrt(2.0) * std::sqrt(3.0 / fi);
    require_fits(fill_whole("kaiming_uniform", {}, t), uniform_between(-kb, kb));
    require_fits(fill_whole("kaiming_normal", {}, t),
                 {family::normal, 0, std::sqrt(2.0) / std::sqrt(fi)});
    require_fits(fill_whole("kaiming_normal", {{"mode", "fan_out"}, {"nonlinearity", "tanh"}}, t),
                 {family::normal, 0, (5.0 / 3) / std::sqrt(fo)});
    double la = std::sqrt(2.0 / (1 + 0.2 * 0.2)) * std::sqrt(3.0 / fi);
    require_fits(fill_whole("kaiming_uniform", {{"a", "0.2"}}, t), uniform_between(-la, la));
    require_fits(fill_whole("lecun_uniform", {}, t),
                 uniform_between(-std::sqrt(3.0 / fi), std::sqrt(3.0 / fi)));
    require_fits(fill_whole("lecun_normal", {}, t),
                 {family::truncated, 0, std::sqrt(1.0 / fi) / truncation_std});
    double tb = 1.0 / std::sqrt(fi);
    require_fits(fill_whole("torch_default", {}, t), uniform_between(-tb, tb));
  }
}

TEST_CASE("fan-scaled strategies give the reference formula's exact bytes", "[standard]") {
  // Each fill must equal a plain rng fill with the bound / std computed as
  // PyTorch or Keras computes it, in double: "number for number".
  tensor_info t = make_tensor("layer.weight", {96, 40}, 40, 96);
  onnx_reinit_rng c_rng = make_tensor_rng(seed, t.name);
  rng_stream rng(c_rng);
  auto reference = [&](auto draw) {
    std::vector<float> v(static_cast<std::size_t>(t.element_count()));
    draw(std::span<float>(v));
    return v;
  };
  auto uniform_ref = [&](double b) {
    return reference([&](std::span<float> s) { rng.uniform(s, 0, -b, b); });
  };
  auto normal_ref = [&](double sd) {
    return reference([&](std::span<float> s) { rng.normal(s, 0, 0.0, sd); });
  };
  auto truncated_ref = [&](double sd) {
    return reference([&](std::span<float> s) { rng.truncated_normal(s, 0, 0.0, sd, -2, 2); });
  };
  double fi = 40, fo = 96;
  // torch: std = gain * math.sqrt(2.0 / float(fan_in + fan_out)); a = math.sqrt(3.0) * std
  CHECK(fill_whole("xavier_uniform", {{"gain", "0.7"}}, t) ==
        uniform_ref(std::sqrt(3.0) * (0.7 * std::sqrt(2.0 / (fi + fo)))));
  CHECK(fill_whole("xavier_normal", {}, t) == normal_ref(1.0 * std::sqrt(2.0 / (fi + fo))));
  // torch: std = gain / math.sqrt(fan); bound = math.sqrt(3.0) * std
  CHECK(fill_whole("kaiming_uniform", {{"nonlinearity", "relu"}}, t) ==
        uniform_ref(std::sqrt(3.0) * (std::sqrt(2.0) / std::sqrt(fi))));
  CHECK(fill_whole("kaiming_normal", {{"nonlinearity", "selu"}, {"mode", "fan_out"}}, t) ==
        normal_ref(0.75 / std::sqrt(fo)));
  // calculate_gain('leaky_relu', 0.1) = math.sqrt(2.0 / (1 + 0.1 ** 2))
  CHECK(fill_whole("kaiming_normal", {{"a", "0.1"}}, t) ==
        normal_ref(std::sqrt(2.0 / (1 + 0.1 * 0.1)) / std::sqrt(fi)));
  // Keras: scale /= n; limit = math.sqrt(3.0 * scale); stddev = math.sqrt(scale) / .8796...
  CHECK(fill_whole("variance_scaling", {{"scale", "0.5"}, {"mode", "fan_avg"}}, t) ==
        truncated_ref(std::sqrt(0.5 / ((fi + fo) / 2.0)) / truncation_std));
  CHECK(fill_whole("variance_scaling", {{"distribution", "uniform"}}, t) ==
        uniform_ref(std::sqrt(3.0 * (1.0 / fi))));
  CHECK(fill_whole("lecun_uniform", {}, t) == uniform_ref(std::sqrt(3.0 * (1.0 / fi))));
  CHECK(fill_whole("lecun_normal", {}, t) == truncated_ref(std::sqrt(1.0 / fi) / truncation_std));
  // nn.Linear: kaiming_uniform_(a=math.sqrt(5)); the bias bound 1 / math.sqrt(fan_in).
  double slope = std::sqrt(5.0);
  CHECK(fill_whole("torch_default", {}, t) ==
        uniform_ref(std::sqrt(3.0) * (std::sqrt(2.0 / (1 + slope * slope)) / std::sqrt(fi))));
  tensor_info bias = t;
  bias.role = tensor_role::bias;
  CHECK(fill_whole("torch_default", {}, bias) == uniform_ref(1.0 / std::sqrt(fi)));
}

TEST_CASE("kaiming nonlinearity=auto uses the tensor's activation", "[standard]") {
  tensor_info t = make_tensor("w", {64, 64}, 64, 64);
  struct {
    activation_kind act;
    double param;
    double gain;
  } cases[] = {{activation_kind::relu, 0, std::sqrt(2.0)},
               {activation_kind::tanh, 0, 5.0 / 3},
               {activation_kind::linear, 0, 1.0},
               {activation_kind::leaky_relu, 0.2, std::sqrt(2.0 / 1.04)},
               {activation_kind::selu, 0, 0.75}};
  for (const auto& c : cases) {
    INFO(to_string(c.act));
    t.activation = c.act;
    t.activation_param = c.param;
    std::vector<float> got = fill_whole("kaiming_normal", {{"nonlinearity", "auto"}}, t);
    tensor_info plain = t;
    plain.activation = activation_kind::linear;
    // Same stream, so the result is the linear fill scaled by the gain.
    std::vector<float> unit = fill_whole("kaiming_normal", {{"nonlinearity", "linear"}}, plain);
    for (std::size_t i = 0; i < got.size(); i += 97)
      CHECK(got[i] == Approx(c.gain * unit[i]).epsilon(1e-6));
  }
}

// ---- Chunked fills --------------------------------------------------------------

TEMPLATE_TEST_CASE("element-wise strategies give the same bytes in chunks", "[standard]", float,
                   double) {
  tensor_info t = make_tensor("chunky", {37, 29}, 29, 37);
  for (const onnx_reinit_strategy_desc& d : standard::standard_strategies()) {
    if ((d.flags & ONNX_REINIT_STRATEGY_ELEMENTWISE) == 0) continue;
    INFO(d.name);
    instance s(d.name, {});
    std::vector<TestType> whole(static_cast<std::size_t>(t.element_count()));
    REQUIRE(s.fill(t, 0, std::span<TestType>(whole)).status == ONNX_REINIT_OK);
    for (std::size_t chunk : {1, 3, 7, 64, 500}) {
      std::vector<TestType> pieces(whole.size(), TestType(-99));
      for (std::size_t first = 0; first < pieces.size(); first += chunk) {
        std::size_t n = std::min(chunk, pieces.size() - first);
        REQUIRE(s.fill(t, first, std::span<TestType>(pieces.data() + first, n)).status ==
                ONNX_REINIT_OK);
      }
      CHECK(std::memcmp(whole.data(), pieces.data(), whole.size() * sizeof(TestType)) == 0);
    }
    // A different seed gives different bytes (constants aside).
    std::vector<TestType> other(whole.size());
    REQUIRE(s.fill(t, 0, std::span<TestType>(other), seed + 1).status == ONNX_REINIT_OK);
    bool constant = std::string_view(d.name) == "zeros" || std::string_view(d.name) == "ones" ||
                    std::string_view(d.name) == "constant";
    CHECK((other == whole) == constant);
  }
}

// ---- Orthogonal -----------------------------------------------------------------

namespace {

// max |Q Q^T - gain^2 I| over the rows of a rows x cols block when
// rows <= cols, else over its columns (Q^T Q).
double orthogonality_error(const float* q, std::int64_t rows, std::int64_t cols, double gain) {
  bool wide = rows <= cols;
  std::int64_t k = wide ? rows : cols, len = wide ? cols : rows;
  auto at = [&](std::int64_t vec, std::int64_t i) {
    return double(wide ? q[vec * cols + i] : q[i * cols + vec]);
  };
  double worst = 0;
  for (std::int64_t a = 0; a < k; ++a)
    for (std::int64_t b = 0; b < k; ++b) {
      double dot = 0;
      for (std::int64_t i = 0; i < len; ++i) dot += at(a, i) * at(b, i);
      worst = std::max(worst, std::abs(dot - (a == b ? gain * gain : 0.0)));
    }
  return worst;
}

}  // namespace

TEST_CASE("orthogonal gives orthonormal rows or columns", "[standard][orthogonal]") {
  // Float rounding of each entry (relative 6e-8) over dot products of up to
  // 150 terms keeps the error well under 1e-5 gain^2.
  struct shape_case {
    std::vector<std::int64_t> shape;
    std::int64_t rows, cols;
  } cases[] = {{{64, 64}, 64, 64},       // square
               {{32, 150}, 32, 150},     // wide: orthonormal rows
               {{150, 32}, 150, 32},     // tall: orthonormal columns
               {{16, 4, 3, 3}, 16, 36},  // conv: shape[0] x rest
               {{200, 300}, 200, 300}};  // several panels and column chunks
  for (double gain : {1.0, 2.5}) {
    for (const shape_case& c : cases) {
      INFO(c.rows << " x " << c.cols << " gain " << gain);
      tensor_info t = make_tensor("q", c.shape, 1, 1);
      std::vector<float> q = fill_whole("orthogonal", {{"gain", std::to_string(gain)}}, t);
      CHECK(orthogonality_error(q.data(), c.rows, c.cols, gain) < 1e-5 * gain * gain);
      CHECK(fill_whole("orthogonal", {{"gain", std::to_string(gain)}}, t) == q);  // determinism
    }
  }
}

TEST_CASE("orthogonal works per gate block", "[standard][orthogonal]") {
  // LSTM R: [dirs = 2, 4 * H, H], one H x H block per direction and gate.
  const std::int64_t h = 24;
  tensor_info t = make_tensor("lstm.R", {2, 4 * h, h}, h, h);
  t.role = tensor_role::recurrent_weight;
  t.gate_count = 4;
  t.block_count = 8;
  t.block_rows = h;
  t.block_cols = h;
  std::vector<float> q = fill_whole("orthogonal", {}, t);
  for (int b = 0; b < 8; ++b) {
    INFO("block " << b);
    CHECK(orthogonality_error(q.data() + b * h * h, h, h, 1.0) < 1e-5);
  }
  CHECK_FALSE(std::equal(q.begin(), q.begin() + h * h, q.begin() + h * h));
  // The whole [8H, H] stack is NOT one orthogonal matrix's columns.
  CHECK(orthogonality_error(q.data(), 8 * h, h, 1.0) > 0.5);
  // LSTM W with input size 40: blocks of H x 40 (wide).
  tensor_info w = make_tensor("lstm.W", {1, 4 * h, 40}, 40, h);
  w.block_count = 4;
  w.block_rows = h;
  w.block_cols = 40;
  std::vector<float> wq = fill_whole("orthogonal", {}, w);
  for (int b = 0; b < 4; ++b) CHECK(orthogonality_error(wq.data() + b * h * 40, h, 40, 1.0) < 1e-5);
}

namespace {

// Checks that block `b` of an orthogonal fill (rows x cols, values / gain)
// is the sign-corrected QR factor of the Gaussian block the strategy drew
// (the host's N(0, 1) stream in the fill's type, whose mapping rng_test
// checks against its definition) from counters b * rows * cols on: for a tall block G = Q R with R
// upper triangular and diag(R) > 0, i.e. R = Q^T G; for a wide one the same of G^T, i.e. G = L Q
// with L = G Q^T lower triangular and diag(L) > 0. With Q's orthonormality (checked above) this
// pins Q exactly: the QR factor with a positive diagonal is unique, and only it makes Q Haar
// distributed.
void check_sign_corrected_qr(const std::vector<float>& values, const tensor_info& t, std::int64_t b,
                             std::int64_t rows, std::int64_t cols, double gain,
                             std::uint64_t rng_seed) {
  const std::int64_t size = rows * cols;
  std::vector<float> gf(static_cast<std::size_t>(size));
  rng_stream(make_tensor_rng(rng_seed, t.name))
      .normal(std::span<float>(gf), static_cast<std::uint64_t>(b * size), 0.0, 1.0);
  const std::vector<double> g = as_double(gf);
  auto q = [&](std::int64_t r, std::int64_t c) { return values[b * size + r * cols + c] / gain; };
  auto gm = [&](std::int64_t r, std::int64_t c) { return g[r * cols + c]; };
  const bool wide = rows < cols;
  const std::int64_t k = wide ? rows : cols, len = wide ? cols : rows;
  // Vector a of Q and of G: column a when tall, row a when wide.
  auto qv = [&](std::int64_t a, std::int64_t i) { return wide ? q(a, i) : q(i, a); };
  auto gv = [&](std::int64_t a, std::int64_t i) { return wide ? gm(a, i) : gm(i, a); };
  // tri(a, c) = <Q vector a, G vector c>: R[a][c] when tall, L[c][a] when wide.
  std::vector<double> tri(static_cast<std::size_t>(k * k));
  for (std::int64_t a = 0; a < k; ++a)
    for (std::int64_t c = 0; c < k; ++c) {
      double dot = 0;
      for (std::int64_t i = 0; i < len; ++i) dot += qv(a, i) * gv(c, i);
      tri[a * k + c] = dot;
    }
  // Float storage of Q (relative 6e-8) over sums of up to 150 terms of
  // |G| < 6 keeps rounding below 1e-5; R's entries are O(1).
  int negative_diagonal = 0;
  double below = 0, residual = 0;
  for (std::int64_t a = 0; a < k; ++a) {
    negative_diagonal += !(tri[a * k + a] > 0.0);
    for (std::int64_t c = 0; c < a; ++c) below = std::max(below, std::abs(tri[a * k + c]));
  }
  // G vector c = sum over a <= c of R[a][c] Q vector a.
  for (std::int64_t c = 0; c < k; ++c)
    for (std::int64_t i = 0; i < len; ++i) {
      double x = 0;
      for (std::int64_t a = 0; a <= c; ++a) x += tri[a * k + c] * qv(a, i);
      residual = std::max(residual, std::abs(x - gv(c, i)));
    }
  INFO("block " << b << " of " << t.name << " (" << rows << " x " << cols << ")");
  CHECK(negative_diagonal == 0);
  CHECK(below < 1e-4);
  CHECK(residual < 1e-4);
}

}  // namespace

TEST_CASE("orthogonal is the sign-corrected QR factor of its Gaussian draw",
          "[standard][orthogonal]") {
  struct shape_case {
    std::vector<std::int64_t> shape;
    std::int64_t rows, cols;
  } cases[] = {{{64, 64}, 64, 64},       // square
               {{32, 150}, 32, 150},     // wide: QR of the transpose
               {{150, 32}, 150, 32},     // tall
               {{16, 4, 3, 3}, 16, 36},  // conv: shape[0] x rest
               {{300, 200}, 300, 200}};  // several panels and column chunks
  for (std::uint64_t s : {seed, seed + 1, std::uint64_t{7}})
    for (double gain : {1.0, 2.5})
      for (const shape_case& c : cases) {
        tensor_info t = make_tensor("q", c.shape, 1, 1);
        std::vector<float> q = fill_whole("orthogonal", {{"gain", std::to_string(gain)}}, t, s);
        check_sign_corrected_qr(q, t, 0, c.rows, c.cols, gain, s);
      }
  // Gate blocks: block b draws from counters b * H * H on.
  const std::int64_t h = 12;
  tensor_info r = make_tensor("lstm.R", {2, 4 * h, h}, h, h);
  r.role = tensor_role::recurrent_weight;
  r.block_count = 8;
  r.block_rows = h;
  r.block_cols = h;
  std::vector<float> rq = fill_whole("orthogonal", {}, r);
  for (std::int64_t b = 0; b < 8; ++b) check_sign_corrected_qr(rq, r, b, h, h, 1.0, seed);
}

TEST_CASE("orthogonal gives the same bytes on 1 and 8 threads", "[standard][orthogonal]") {
  // Shapes with several panels (48 columns) and several parallel column
  // chunks (128 columns), tall and wide, and parallel gate blocks. Real
  // threads: 8 workers whatever the core count.
  tensor_info tall = make_tensor("tall", {700, 300}, 300, 700);
  tensor_info wide = make_tensor("wide", {130, 520}, 520, 130);
  tensor_info gates = make_tensor("lstm.R", {1, 4 * 150, 150}, 150, 150);
  gates.block_count = 4;
  gates.block_rows = 150;
  gates.block_cols = 150;
  auto fill_on = [](int threads, const tensor_info& t) {
    tbb::global_control limit(tbb::global_control::max_allowed_parallelism, threads);
    tbb::task_arena arena(threads);
    std::vector<float> q;
    arena.execute([&] { q = fill_whole("orthogonal", {}, t); });
    return q;
  };
  for (const tensor_info* t : {&tall, &wide, &gates}) {
    INFO(t->name);
    const std::vector<float> one = fill_on(1, *t);
    CHECK(fill_on(8, *t) == one);
    CHECK(fill_on(2, *t) == one);
  }
}

namespace {

std::atomic<int> host_loops{0};

// The host's parallel loop, counted.
void counting_parallel_for(std::uint64_t count, void (*body)(void*, std::uint64_t), void* context) {
  host_loops.fetch_add(1);
  host_rng_api().parallel_for(count, body, context);
}

}  // namespace

TEST_CASE("orthogonal runs its loops on the host's threads, or alone on an older host",
          "[standard][orthogonal]") {
  // The plugin has no threads of its own (sdk/parallel.h): its block and
  // column-chunk loops go through the host's loop in the RNG API table, and
  // an older table without it gives the same bytes, in order.
  tensor_info tall = make_tensor("tall", {700, 300}, 300, 700);
  tensor_info gates = make_tensor("lstm.R", {1, 4 * 150, 150}, 150, 150);
  gates.block_count = 4;
  gates.block_rows = 150;
  gates.block_cols = 150;
  instance s("orthogonal", {});
  REQUIRE(s.status() == ONNX_REINIT_OK);
  onnx_reinit_rng_api counted = host_rng_api();
  counted.parallel_for = &counting_parallel_for;
  onnx_reinit_rng_api older = host_rng_api();
  older.struct_size = static_cast<std::uint32_t>(offsetof(onnx_reinit_rng_api, parallel_for));
  older.parallel_for = &counting_parallel_for;  // outside struct_size: never called
  for (const tensor_info* t : {&tall, &gates}) {
    INFO(t->name);
    const std::vector<float> expected = fill_whole("orthogonal", {}, *t);
    std::vector<float> out(expected.size());
    host_loops = 0;
    REQUIRE(s.fill(*t, 0, std::span<float>(out), seed, ONNX_REINIT_FLOAT32, &counted).status ==
            ONNX_REINIT_OK);
    CHECK(out == expected);
    CHECK(host_loops.load() > 0);
    std::fill(out.begin(), out.end(), 0.0f);
    host_loops = 0;
    REQUIRE(s.fill(*t, 0, std::span<float>(out), seed, ONNX_REINIT_FLOAT32, &older).status ==
            ONNX_REINIT_OK);
    CHECK(out == expected);
    CHECK(host_loops.load() == 0);
  }
}

TEST_CASE("orthogonal gives the same bytes on every SIMD target", "[standard][orthogonal]") {
  // The Gaussian draw and the reflector products are Highway code chosen at
  // run time; dispatch is forced to each target compiled in and supported
  // here. Float and double, tall and wide, with ragged row counts.
  tensor_info tall = make_tensor("tall", {301, 133}, 133, 301);
  tensor_info wide = make_tensor("wide", {70, 211}, 211, 70);
  hwy::SetSupportedTargetsForTest(0);
  const std::vector<std::int64_t> targets = hwy::SupportedAndGeneratedTargets();
  REQUIRE(!targets.empty());
  for (const tensor_info* t : {&tall, &wide}) {
    const std::vector<float> first_f = fill_whole<float>("orthogonal", {}, *t);
    const std::vector<double> first_d = fill_whole<double>("orthogonal", {}, *t);
    for (std::int64_t target : targets) {
      hwy::SetSupportedTargetsForTest(target);
      INFO(t->name << " on " << hwy::TargetName(target));
      CHECK(fill_whole<float>("orthogonal", {}, *t) == first_f);
      CHECK(fill_whole<double>("orthogonal", {}, *t) == first_d);
    }
    hwy::SetSupportedTargetsForTest(0);
  }
  INFO(targets.size() << " targets");
  CHECK(targets.size() >= 2);  // at least the best one and the portable EMU128/SCALAR
}

namespace {

// CDF of one entry x of an n x n Haar-orthogonal matrix: a column is uniform
// on the unit sphere, so x^2 ~ Beta(1/2, (n-1)/2) and the sign is symmetric:
// F(x) = 1/2 + sign(x) I_{x^2}(1/2, (n-1)/2) / 2.
double haar_entry_cdf(double x, int n) {
  const double half = 0.5 * boost::math::ibeta(0.5, 0.5 * (n - 1), std::min(1.0, x * x));
  return x < 0 ? 0.5 - half : 0.5 + half;
}

}  // namespace

TEST_CASE("orthogonal entries have the Haar distribution", "[standard][orthogonal][stats]") {
  // N independent 8 x 8 blocks (each block draws from its own counters).
  // For a fixed position (i, j) the N values are i.i.d. with the CDF above.
  //  - Kolmogorov-Smirnov with the DKW bound: P(sup |F_N - F| > eps) <=
  //    2 exp(-2 N eps^2); eps = sqrt(ln(2 / 1e-9) / (2 N)) = 0.052 for
  //    N = 4000 makes a false failure rarer than 1e-9 per position. Without
  //    the sign correction Q[0][0] = -|g| / ||g|| is never positive, F_N(0) = 1
  //    against F(0) = 1/2.
  //  - Variance: n x^2 has mean 1 and variance 2 (n - 1) / (n + 2) (from the
  //    Beta moments), so its sample mean has SE sqrt(2 (n - 1) / ((n + 2) N))
  //    = 0.019; allow 6 SE (false failure < 2e-9).
  const int n = 8, count = 4000;
  tensor_info t = make_tensor("haar", {count * n, n}, n, n);
  t.block_count = count;
  t.block_rows = n;
  t.block_cols = n;
  std::vector<float> q = fill_whole("orthogonal", {}, t);
  const double eps = std::sqrt(std::log(2.0 / 1e-9) / (2.0 * count));
  const double se = std::sqrt(2.0 * (n - 1) / ((n + 2.0) * count));
  for (auto [i, j] : {std::pair{0, 0}, {n - 1, n - 1}, {0, n - 1}, {n - 1, 0}, {3, 5}}) {
    std::vector<double> x(count);
    double mean_square = 0;
    for (int b = 0; b < count; ++b) {
      x[b] = q[static_cast<std::size_t>(b * n * n + i * n + j)];
      mean_square += n * x[b] * x[b] / count;
    }
    std::sort(x.begin(), x.end());
    double ks = 0;
    for (int k = 0; k < count; ++k) {
      const double f = haar_entry_cdf(x[k], n);
      ks = std::max({ks, std::abs(f - double(k) / count), std::abs(f - double(k + 1) / count)});
    }
    INFO("entry (" << i << ", " << j << "): KS " << ks << " of " << eps << ", n E[x^2] "
                   << mean_square);
    CHECK(ks < eps);
    CHECK(std::abs(mean_square - 1.0) < 6 * se);
  }
}

// ---- Identity, dirac, sparse ------------------------------------------------------

TEST_CASE("identity is eye_ times gain", "[standard]") {
  tensor_info t = make_tensor("w", {3, 5}, 5, 3);
  std::vector<float> x = fill_whole("identity", {{"gain", "2"}}, t);
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 5; ++j) CHECK(x[i * 5 + j] == (i == j ? 2.0f : 0.0f));
  tensor_info tall = make_tensor("w", {4, 2}, 2, 4);
  CHECK(fill_whole("identity", {}, tall) == std::vector<float>{1, 0, 0, 1, 0, 0, 0, 0});
  // Per block: an RNN recurrent weight [1, 2 * 3, 3] as two 3 x 3 blocks.
  tensor_info r = make_tensor("R", {1, 6, 3}, 3, 3);
  r.block_count = 2;
  r.block_rows = 3;
  r.block_cols = 3;
  std::vector<float> eye2 = fill_whole("identity", {}, r);
  for (int b = 0; b < 2; ++b)
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 3; ++j) CHECK(eye2[b * 9 + i * 3 + j] == (i == j ? 1.0f : 0.0f));
}

namespace {

// Index of element [o, i, k...] of a row-major tensor.
std::size_t offset(const std::vector<std::int64_t>& shape, std::vector<std::int64_t> index) {
  std::int64_t off = 0;
  for (std::size_t d = 0; d < shape.size(); ++d) off = off * shape[d] + index[d];
  return static_cast<std::size_t>(off);
}

}  // namespace

TEST_CASE("dirac matches dirac_ for 3-, 4- and 5-D, grouped", "[standard]") {
  struct dirac_case {
    std::vector<std::int64_t> shape;
    std::int64_t tensor_groups;
    std::string groups_param;
    std::int64_t groups;
  } cases[] = {{{8, 4, 3, 3}, 1, "0", 1},
               {{8, 2, 3, 5}, 2, "0", 2},      // the tensor's group
               {{6, 6, 4}, 1, "3", 3},         // explicit groups; even kernel: centre 2
               {{4, 8, 3, 2, 5}, 1, "0", 1}};  // out < in
  for (const dirac_case& c : cases) {
    INFO(c.shape.size() << "-D groups " << c.groups);
    tensor_info t = make_tensor("conv", c.shape, 1, 1, c.tensor_groups);
    std::vector<float> x = fill_whole("dirac", {{"groups", c.groups_param}}, t);
    std::vector<float> want(x.size(), 0.0f);
    std::int64_t per_group = c.shape[0] / c.groups;
    for (std::int64_t g = 0; g < c.groups; ++g)
      for (std::int64_t d = 0; d < std::min(per_group, c.shape[1]); ++d) {
        std::vector<std::int64_t> index = {g * per_group + d, d};
        for (std::size_t k = 2; k < c.shape.size(); ++k) index.push_back(c.shape[k] / 2);
        want[offset(c.shape, index)] = 1.0f;
      }
    CHECK(x == want);
  }
}

TEST_CASE("sparse zeroes ceil(sparsity * rows) per column", "[standard][stats]") {
  tensor_info t = make_tensor("w", {100, 300}, 300, 100);
  std::vector<float> x = fill_whole("sparse", {{"sparsity", "0.3"}, {"std", "0.02"}}, t);
  std::vector<double> nonzero;
  std::set<std::vector<int>> patterns;
  for (int c = 0; c < 300; ++c) {
    std::vector<int> zero_rows;
    for (int r = 0; r < 100; ++r)
      if (x[r * 300 + c] == 0.0f)
        zero_rows.push_back(r);
      else
        nonzero.push_back(x[r * 300 + c]);
    CHECK(zero_rows.size() == 30);
    patterns.insert(zero_rows);
  }
  CHECK(patterns.size() == 300);  // every column draws its own rows
  // The non-zero values are N(0, 0.02^2) (the ones kept are chosen
  // independently of their values).
  verdict v = check_sample(nonzero, {family::normal, 0, 0.02});
  INFO(v.detail);
  CHECK(v.ok);
  // Rows are chosen uniformly: each row is zeroed in ~30% of 300 columns
  // (binomial sd 7.9; 6 sd).
  for (int r = 0; r < 100; ++r) {
    int zeros = 0;
    for (int c = 0; c < 300; ++c) zeros += x[r * 300 + c] == 0.0f;
    CHECK(std::abs(zeros - 90) < 6 * 7.94);
  }
  CHECK(fill_whole("sparse", {{"sparsity", "0.3"}, {"std", "0.02"}}, t) == x);
  // sparsity 0: a plain normal fill; ceil(0.01 * 100) = 1 zero per column.
  for (float v : fill_whole("sparse", {{"sparsity", "0"}}, t)) CHECK(v != 0.0f);
  std::vector<float> one = fill_whole("sparse", {{"sparsity", "0.01"}}, t);
  CHECK(std::count(one.begin(), one.end(), 0.0f) == 300);
  // Per block: two 10 x 4 blocks, 5 zeros in each column of each block.
  tensor_info blocks = make_tensor("b", {2, 10, 4}, 4, 10);
  blocks.block_count = 2;
  blocks.block_rows = 10;
  blocks.block_cols = 4;
  std::vector<float> y = fill_whole("sparse", {{"sparsity", "0.5"}}, blocks);
  for (int b = 0; b < 2; ++b)
    for (int c = 0; c < 4; ++c) {
      int zeros = 0;
      for (int r = 0; r < 10; ++r) zeros += y[(b * 10 + r) * 4 + c] == 0.0f;
      CHECK(zeros == 5);
    }
}

// ---- Errors -------------------------------------------------------------------------

namespace {

fill_result try_fill(std::string_view name, const overrides& o, const tensor_info& t,
                     std::uint64_t first = 0, std::int64_t count = -1) {
  instance s(name, o);
  REQUIRE(s.status() == ONNX_REINIT_OK);
  std::vector<float> out(static_cast<std::size_t>(count < 0 ? t.element_count() : count));
  return s.fill(t, first, std::span<float>(out));
}

}  // namespace

TEST_CASE("invalid parameter combinations are refused at create", "[standard][errors]") {
  struct bad_case {
    const char* strategy;
    overrides params;
    const char* mentions;
  } cases[] = {{"uniform", {{"low", "1"}, {"high", "1"}}, "low"},
               {"uniform", {{"low", "2"}, {"high", "1"}}, "high"},
               {"truncated_normal", {{"a", "1"}, {"b", "-1"}}, "'a'"},
               {"truncated_normal", {{"a", "0.5"}, {"b", "0.5"}}, "'b'"},
               {"constant", {{"value", "inf"}}, "value"},
               {"normal", {{"mean", "nan"}}, "mean"},
               {"kaiming_normal", {{"nonlinearity", "swish"}}, "swish"},
               {"variance_scaling", {{"mode", "fan_sum"}}, "fan_sum"},
               {"variance_scaling", {{"distribution", "cauchy"}}, "cauchy"},
               {"sparse", {{"sparsity", "1"}}, "sparsity"},
               {"dirac", {{"groups", "-1"}}, "groups"}};
  for (const bad_case& c : cases) {
    INFO(c.strategy);
    instance s(c.strategy, c.params);
    CHECK(s.status() == ONNX_REINIT_INVALID_ARGUMENT);
    CHECK_THAT(s.error(), Catch::Contains(c.mentions));
    CHECK_THAT(s.error(), Catch::Contains(c.strategy));
  }
}

TEST_CASE("bad fans and empty tensors are refused, naming tensor and fan", "[standard][errors]") {
  struct fan_case {
    const char* strategy;
    overrides params;
    double fan_in, fan_out;
    const char* fan;
  } cases[] = {{"xavier_uniform", {}, 0, 10, "fan_in"},
               {"xavier_normal", {}, 10, -1, "fan_out"},
               {"kaiming_uniform", {}, std::nan(""), 10, "fan_in"},
               {"kaiming_normal", {{"mode", "fan_out"}}, 10, 0, "fan_out"},
               {"variance_scaling", {{"mode", "fan_avg"}}, 10, INFINITY, "fan_out"},
               {"lecun_uniform", {}, 0, 1, "fan_in"},
               {"lecun_normal", {}, -3, 1, "fan_in"},
               {"torch_default", {}, 0, 1, "fan_in"}};
  for (const fan_case& c : cases) {
    INFO(c.strategy);
    tensor_info t = make_tensor("model.layer3.weight", {4, 4}, c.fan_in, c.fan_out);
    fill_result r = try_fill(c.strategy, c.params, t);
    CHECK(r.status == ONNX_REINIT_INVALID_ARGUMENT);
    CHECK_THAT(r.error, Catch::Contains("model.layer3.weight") && Catch::Contains(c.fan) &&
                            Catch::Contains(c.strategy));
  }
  // An empty tensor has no meaningful fans.
  fill_result empty = try_fill("xavier_uniform", {}, make_tensor("e", {0, 8}, 8, 0));
  CHECK(empty.status == ONNX_REINIT_INVALID_ARGUMENT);
  CHECK_THAT(empty.error, Catch::Contains("'e'") && Catch::Contains("empty"));
  // The fan mode not used does not matter.
  CHECK(try_fill("kaiming_normal", {}, make_tensor("w", {4, 4}, 4, 0)).status == ONNX_REINIT_OK);
}

TEST_CASE("structured strategies refuse shapes they cannot fill", "[standard][errors]") {
  struct shape_case {
    const char* strategy;
    tensor_info tensor;
    const char* mentions;
  } cases[] = {
      {"identity", make_tensor("conv.w", {4, 4, 3, 3}, 36, 36), "2-D"},
      {"identity", make_tensor("v", {8}, 1, 1), "2-D"},
      {"sparse", make_tensor("conv.w", {4, 4, 3}, 12, 12), "2-D"},
      {"orthogonal", make_tensor("v", {8}, 1, 1), "2 dimensions"},
      {"orthogonal", make_tensor("e", {0, 3}, 3, 0), "empty"},
      {"dirac", make_tensor("fc", {4, 4}, 4, 4), "rank 2"},
      {"dirac", make_tensor("c6", {1, 1, 1, 1, 1, 1}, 1, 1), "rank 6"},
      {"dirac", make_tensor("g", {6, 2, 3, 3}, 18, 18, 4), "divisible"},
  };
  for (const shape_case& c : cases) {
    INFO(c.strategy << " " << c.tensor.name);
    fill_result r = try_fill(c.strategy, {}, c.tensor);
    CHECK(r.status == ONNX_REINIT_INVALID_ARGUMENT);
    CHECK_THAT(r.error, Catch::Contains(c.mentions) && Catch::Contains(c.tensor.name));
  }
  // A matrix view that does not cover the tensor.
  tensor_info bad_view = make_tensor("lstm.R", {1, 12, 3}, 3, 3);
  bad_view.block_count = 3;
  bad_view.block_rows = 3;
  bad_view.block_cols = 3;
  fill_result r = try_fill("orthogonal", {}, bad_view);
  CHECK(r.status == ONNX_REINIT_INVALID_ARGUMENT);
  CHECK_THAT(r.error, Catch::Contains("does not cover"));
  // Structured strategies cannot be filled in chunks.
  tensor_info square = make_tensor("w", {4, 4}, 4, 4);
  for (const char* name : {"orthogonal", "identity", "sparse"}) {
    fill_result chunk = try_fill(name, {}, square, 4, 8);
    CHECK(chunk.status == ONNX_REINIT_INVALID_ARGUMENT);
    CHECK_THAT(chunk.error, Catch::Contains("whole"));
  }
  // A fill buffer that is neither float32 nor float64 (trampoline check).
  instance s("normal", {});
  std::vector<float> out(16);
  fill_result half = s.fill(square, 0, std::span<float>(out), seed, ONNX_REINIT_FLOAT16);
  CHECK(half.status == ONNX_REINIT_INVALID_ARGUMENT);
  CHECK_THAT(half.error, Catch::Contains("float32"));
}

// ---- The module ---------------------------------------------------------------------

TEST_CASE("the standard module exports the descriptor", "[standard][module]") {
  std::string path = std::string(ONNX_REINIT_BUILD_PLUGIN_DIR) + "/standard.so";
  void* library = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  INFO(path << ": " << (library ? "" : dlerror()));
  REQUIRE(library != nullptr);
  auto entry =
      reinterpret_cast<onnx_reinit_plugin_entry_fn>(dlsym(library, ONNX_REINIT_PLUGIN_ENTRY_NAME));
  REQUIRE(entry != nullptr);
  const onnx_reinit_plugin_desc* desc = entry();
  REQUIRE(desc != nullptr);
  CHECK(desc->abi_version == ONNX_REINIT_ABI_VERSION);
  CHECK(desc->struct_size == sizeof(onnx_reinit_plugin_desc));
  CHECK(std::string(desc->plugin_id) == "standard");
  CHECK(std::string(desc->plugin_version) == "0.1.0");
  REQUIRE(desc->strategy_count == standard::standard_strategies().size());
  for (std::uint32_t i = 0; i < desc->strategy_count; ++i)
    CHECK(std::string(desc->strategies[i].name) == standard::standard_strategies()[i].name);
  // The module's xavier_uniform gives the same bytes as the linked one.
  const onnx_reinit_strategy_desc* xavier = nullptr;
  for (std::uint32_t i = 0; i < desc->strategy_count; ++i)
    if (std::string(desc->strategies[i].name) == "xavier_uniform") xavier = &desc->strategies[i];
  REQUIRE(xavier != nullptr);
  onnx_reinit_param_value gain{"gain", 1.0, nullptr};
  void* handle = nullptr;
  char error[256] = "";
  REQUIRE(xavier->create(&gain, 1, &handle, error, sizeof error) == ONNX_REINIT_OK);
  tensor_info t = make_tensor("m", {16, 8}, 8, 16);
  onnx_reinit_tensor_info c = to_c(t);
  onnx_reinit_rng rng = make_tensor_rng(seed, t.name);
  std::vector<float> out(128);
  onnx_reinit_span span{out.data(), 0, out.size(), ONNX_REINIT_FLOAT32};
  CHECK(xavier->fill(handle, &c, &rng, &span, error, sizeof error) == ONNX_REINIT_OK);
  xavier->destroy(handle);
  CHECK(out == fill_whole("xavier_uniform", {}, t));
  dlclose(library);
}

TEST_CASE("double fills follow the same formulas", "[standard][stats]") {
  for (const tensor_info& t : test_shapes()) {
    INFO(t.name);
    std::vector<double> x = fill_whole<double>("variance_scaling", {}, t);
    verdict v = check_sample(x, {family::truncated, 0, std::sqrt(1.0 / t.fan_in) / truncation_std});
    INFO(v.detail);
    CHECK(v.ok);
    std::vector<double> k = fill_whole<double>("kaiming_uniform", {}, t);
    double b = std::sqrt(2.0) * std::sqrt(3.0 / t.fan_in);
    verdict w = check_sample(k, uniform_between(-b, b));
    INFO(w.detail);
    CHECK(w.ok);
  }
}

// ---- The SDK contract ----------------------------------------------------------------

namespace {

// `fill` as the host calls it: (tensor, first element, output chunk).
using fill_fn = std::function<bool(const tensor_info&, std::uint64_t, std::span<float>)>;

// Fills each tensor sequentially for reference, then from `threads` threads
// at once on the same instance: every thread fills every tensor whole (in a
// different order) and, for element-wise strategies, the threads also share
// each tensor's chunks of 7 elements. True when every result has the
// reference's bytes.
bool same_bytes_when_concurrent(const fill_fn& fill, const std::vector<tensor_info>& tensors,
                                bool elementwise, unsigned threads = 4) {
  std::vector<std::vector<float>> reference;
  for (const tensor_info& t : tensors) {
    reference.emplace_back(static_cast<std::size_t>(t.element_count()));
    if (!fill(t, 0, std::span<float>(reference.back()))) return false;
  }
  constexpr std::size_t chunk = 7;
  std::vector<std::vector<float>> shared;
  for (const auto& r : reference) shared.emplace_back(r.size(), -99.0f);
  std::vector<std::vector<std::vector<float>>> own(threads);
  std::vector<char> ok(threads, 1);
  std::latch start(threads);
  std::vector<std::thread> pool;
  for (unsigned k = 0; k < threads; ++k)
    pool.emplace_back([&, k] {
      start.arrive_and_wait();
      for (int repeat = 0; repeat < 3; ++repeat)
        for (std::size_t j = 0; j < tensors.size(); ++j) {
          std::size_t i = (j + k) % tensors.size();
          std::vector<float> out(reference[i].size());
          ok[k] &= fill(tensors[i], 0, std::span<float>(out));
          ok[k] &= out == reference[i];
          if (!elementwise || repeat > 0) continue;
          for (std::size_t first = k * chunk; first < out.size(); first += threads * chunk) {
            std::size_t n = std::min(chunk, out.size() - first);
            ok[k] &= fill(tensors[i], first, std::span<float>(shared[i].data() + first, n));
          }
        }
    });
  for (std::thread& t : pool) t.join();
  bool all = std::all_of(ok.begin(), ok.end(), [](char c) { return c != 0; });
  return all && (!elementwise || shared == reference);
}

// Calls the descriptor's target_moments.
int moments_of(std::string_view name, const overrides& o, const onnx_reinit_tensor_info& c,
               double& mean, double& sd, std::string& error) {
  const onnx_reinit_strategy_desc& d = find_strategy(name);
  std::vector<onnx_reinit_param_value> values;
  std::vector<std::string> choices;
  choices.reserve(d.param_count);
  for (std::uint32_t i = 0; i < d.param_count; ++i) {
    const onnx_reinit_param_schema& p = d.params[i];
    auto it = std::find_if(o.begin(), o.end(), [&](const auto& x) { return x.first == p.name; });
    onnx_reinit_param_value v{p.name, p.default_number, nullptr};
    if (p.type == ONNX_REINIT_PARAM_CHOICE) {
      choices.push_back(it != o.end() ? it->second : p.default_choice);
      v.choice = choices.back().c_str();
    } else if (it != o.end()) {
      v.number = std::stod(it->second);
    }
    values.push_back(v);
  }
  void* handle = nullptr;
  char message[512] = "";
  REQUIRE(d.create(values.data(), static_cast<std::uint32_t>(values.size()), &handle, message,
                   sizeof message) == ONNX_REINIT_OK);
  int status = d.target_moments(handle, &c, &mean, &sd, message, sizeof message);
  d.destroy(handle);
  error = message;
  return status;
}

}  // namespace

TEST_CASE("fill is safe to call concurrently on one instance, across tensors and chunks",
          "[standard][threads]") {
  std::vector<tensor_info> candidates = {
      make_tensor("dense", {48, 40}, 40, 48),
      make_tensor("tall", {60, 12}, 12, 60),
      make_tensor("conv", {16, 8, 3, 3}, 72, 144),
  };
  for (const onnx_reinit_strategy_desc& d : standard::standard_strategies()) {
    INFO(d.name);
    instance s(d.name, {});
    REQUIRE(s.status() == ONNX_REINIT_OK);
    // The tensors this strategy fills (identity wants matrices, dirac convs).
    std::vector<tensor_info> tensors;
    for (const tensor_info& t : candidates) {
      std::vector<float> probe(static_cast<std::size_t>(t.element_count()));
      if (s.fill(t, 0, std::span<float>(probe)).status == ONNX_REINIT_OK) tensors.push_back(t);
    }
    REQUIRE_FALSE(tensors.empty());
    fill_fn fill = [&](const tensor_info& t, std::uint64_t first, std::span<float> out) {
      return s.fill(t, first, out).status == ONNX_REINIT_OK;
    };
    CHECK(same_bytes_when_concurrent(fill, tensors,
                                     (d.flags & ONNX_REINIT_STRATEGY_ELEMENTWISE) != 0));
  }

  // The check catches a strategy whose fill depends on state it changes:
  // one that counts its calls into the values.
  struct counting {
    mutable std::atomic<int> calls{0};
    void fill(std::span<float> out) const {
      float v = static_cast<float>(calls++);
      for (float& x : out) x = v;
    }
  } racy;
  fill_fn racy_fill = [&](const tensor_info&, std::uint64_t, std::span<float> out) {
    racy.fill(out);
    return true;
  };
  CHECK_FALSE(same_bytes_when_concurrent(racy_fill, {candidates[0]}, true));
}

TEST_CASE("the strategy table keeps every entry of every family", "[standard]") {
  // 19 entries: a fixed table of 18 would drop the last one.
  std::vector<onnx_reinit_strategy_desc> many(19);
  for (std::size_t i = 0; i < many.size(); ++i) many[i].param_count = static_cast<std::uint32_t>(i);
  std::span<const onnx_reinit_strategy_desc> all(many);
  std::vector<onnx_reinit_strategy_desc> joined =
      standard::concatenate({all.first(6), all.subspan(6, 8), all.subspan(14)});
  REQUIRE(joined.size() == 19);
  for (std::size_t i = 0; i < joined.size(); ++i) CHECK(joined[i].param_count == i);

  std::size_t families = standard::fixed_distribution_strategies().size() +
                         standard::fan_scaled_strategies().size() +
                         standard::structured_strategies().size();
  CHECK(standard::standard_strategies().size() == families);
  for (const onnx_reinit_strategy_desc& d : standard::standard_strategies()) {
    CHECK(d.name != nullptr);
    CHECK(d.struct_size == sizeof(onnx_reinit_strategy_desc));
  }
}

TEST_CASE("variance_scaling: Keras's truncated_normal, untruncated_normal, uniform; normal refused",
          "[standard][stats]") {
  for (const tensor_info& t : test_shapes())
    for (std::string mode : {"fan_in", "fan_avg"}) {
      double s = 2.0 / keras_n(t, mode);  // the variance Keras aims at
      struct {
        std::string dist;
        expected e;
      } cases[] = {
          {"truncated_normal", {family::truncated, 0, std::sqrt(s) / truncation_std}},
          {"untruncated_normal", {family::normal, 0, std::sqrt(s)}},
          {"uniform", uniform_between(-std::sqrt(3 * s), std::sqrt(3 * s))},
      };
      for (const auto& c : cases) {
        INFO(t.name << " " << mode << " " << c.dist);
        CHECK(theory(c.e).var == Approx(s).epsilon(1e-9));
        std::vector<double> x = as_double(fill_whole(
            "variance_scaling", {{"scale", "2"}, {"mode", mode}, {"distribution", c.dist}}, t));
        verdict v = check_sample(x, c.e);
        INFO(v.detail);
        CHECK(v.ok);
        // The sample variance against scale / n, tolerance from n: six
        // standard errors of s^2, (kurtosis - 1) s^4 / n.
        const double n = static_cast<double>(x.size());
        double mean = std::accumulate(x.begin(), x.end(), 0.0) / n, m2 = 0;
        for (double xi : x) m2 += (xi - mean) * (xi - mean);
        double tolerance = 6 * s * std::sqrt((theory(c.e).m4 - 1) / n);
        CHECK(std::abs(m2 / (n - 1) - s) <= tolerance);
        // A factor-2 error in the variance is far outside it...
        CHECK(std::abs(m2 / (n - 1) - 2 * s) > tolerance);
        CHECK(std::abs(m2 / (n - 1) - s / 2) > tolerance);
        // ...and the truncated normal without Keras's 0.8796 correction
        // (variance 0.774 s) is caught by the full check.
        if (c.dist == "truncated_normal")
          CHECK_FALSE(check_sample(x, {family::truncated, 0, std::sqrt(s)}).ok);
        // The target the report shows is the same std.
        onnx_reinit_tensor_info ct = to_c(t);
        double m = -1, sd = -1;
        std::string error;
        REQUIRE(moments_of("variance_scaling",
                           {{"scale", "2"}, {"mode", mode}, {"distribution", c.dist}}, ct, m, sd,
                           error) == ONNX_REINIT_OK);
        CHECK(m == 0.0);
        CHECK(sd == Approx(std::sqrt(s)).epsilon(1e-12));
      }
    }
  // "normal" means truncated in older Keras / tf.compat.v1 and untruncated
  // in JAX: refused, naming the two words that say which.
  instance refused("variance_scaling", {{"distribution", "normal"}});
  CHECK(refused.status() == ONNX_REINIT_INVALID_ARGUMENT);
  CHECK_THAT(refused.error(), Catch::Matchers::Contains("distribution=truncated_normal") &&
                                  Catch::Matchers::Contains("distribution=untruncated_normal"));
}

TEST_CASE("the SDK reads only the struct it was given: too small is an error, larger is fine",
          "[standard][abi]") {
  tensor_info t = make_tensor("w", {16, 8}, 8, 16);
  const onnx_reinit_strategy_desc& d = find_strategy("xavier_uniform");
  onnx_reinit_param_value gain{"gain", 1.0, nullptr};
  void* handle = nullptr;
  char error[512] = "";
  REQUIRE(d.create(&gain, 1, &handle, error, sizeof error) == ONNX_REINIT_OK);
  std::unique_ptr<void, void (*)(void*)> owner(handle, d.destroy);
  onnx_reinit_rng rng = make_tensor_rng(seed, t.name);
  std::vector<float> out(128);
  onnx_reinit_span span{out.data(), 0, out.size(), ONNX_REINIT_FLOAT32};
  const std::vector<float> expected_bytes = fill_whole("xavier_uniform", {}, t);

  // A tensor info from an older, smaller layout: refused before any field
  // past its end is read.
  onnx_reinit_tensor_info small = to_c(t);
  small.struct_size = 8;
  CHECK(d.fill(handle, &small, &rng, &span, error, sizeof error) == ONNX_REINIT_ERROR);
  CHECK_THAT(std::string(error), Catch::Matchers::Contains("tensor info is 8 bytes"));
  double mean = 0, sd = 0;
  CHECK(d.target_moments(handle, &small, &mean, &sd, error, sizeof error) == ONNX_REINIT_ERROR);
  CHECK_THAT(std::string(error), Catch::Matchers::Contains("tensor info is 8 bytes"));

  // A newer host's larger tensor info: the known fields are read.
  struct newer_info {
    onnx_reinit_tensor_info base;
    double future_field;
  } bigger{to_c(t), 123.0};
  bigger.base.struct_size = sizeof(newer_info);
  CHECK(d.fill(handle, &bigger.base, &rng, &span, error, sizeof error) == ONNX_REINIT_OK);
  CHECK(out == expected_bytes);

  // An RNG API table from an older host, with only `uniform`.
  onnx_reinit_rng_api old_api = *rng.api;
  old_api.struct_size = static_cast<std::uint32_t>(offsetof(onnx_reinit_rng_api, normal));
  onnx_reinit_rng old_rng = rng;
  old_rng.api = &old_api;
  onnx_reinit_tensor_info c = to_c(t);
  CHECK(d.fill(handle, &c, &old_rng, &span, error, sizeof error) == ONNX_REINIT_ERROR);
  CHECK_THAT(std::string(error), Catch::Matchers::Contains("API table is 16 bytes"));
}

TEST_CASE("target_moments: cannot say is ONNX_REINIT_UNKNOWN, a failure is an error",
          "[standard]") {
  tensor_info t = make_tensor("w", {16, 8}, 8, 16);
  onnx_reinit_tensor_info c = to_c(t);
  double mean = -1, sd = -1;
  std::string error;
  CHECK(moments_of("identity", {}, c, mean, sd, error) == ONNX_REINIT_UNKNOWN);
  CHECK(moments_of("kaiming_normal", {}, c, mean, sd, error) == ONNX_REINIT_OK);
  CHECK(sd == Approx(std::sqrt(2.0 / 8)));
  // A fan of 0 makes the formula fail: an error with the strategy's message.
  tensor_info no_fan = make_tensor("nofan", {16, 8}, 0, 16);
  onnx_reinit_tensor_info cz = to_c(no_fan);
  CHECK(moments_of("kaiming_normal", {}, cz, mean, sd, error) == ONNX_REINIT_INVALID_ARGUMENT);
  CHECK_THAT(error, Catch::Matchers::Contains("kaiming_normal") &&
                        Catch::Matchers::Contains("'nofan'") &&
                        Catch::Matchers::Contains("fan_in"));
}
