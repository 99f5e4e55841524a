// Adaptive Gauss-Kronrod (G7/K15, QUADPACK's nodes) over the standard normal
// variable t, z = mean + std * t, integrating f and f^2 together.
#include "gaussian_moments.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <numbers>
#include <queue>
#include <vector>

namespace onnx_reinit::signal {
namespace {

// Kronrod nodes (positive half, 0 last) and weights; the Gauss weights are
// those of the odd-indexed nodes.
constexpr std::array<double, 8> kronrod_nodes = {
    0.991455371120812639206854697526329, 0.949107912342758524526189684047851,
    0.864864423359769072789712788640926, 0.741531185599394439863864773280788,
    0.586087235467691130294144845693013, 0.405845151377397166906606412076961,
    0.207784955007898467600689403773245, 0.0};
constexpr std::array<double, 8> kronrod_weights = {
    0.022935322010529224963732008058970, 0.063092092629978553290700663189204,
    0.104790010322250183839876322541518, 0.140653259715525918745189590510238,
    0.169004726639267902826583426598550, 0.190350578064785409913256402421014,
    0.204432940075298892414161999234649, 0.209482141084727828012999174891714};
constexpr std::array<double, 4> gauss_weights = {
    0.129484966168869693270611432679082, 0.279705391489276667901467771423780,
    0.381830050505118944950369775488975, 0.417959183673469387755102040816327};

// Beyond |t| = 12 the normal density is below 1e-31; the range grows for
// functions whose square outgrows it.
constexpr double initial_half_range = 12.0;
constexpr double max_half_range = 64.0;
// The first panels: the adaptive refinement splits where the integrand needs it.
constexpr double initial_panel = 4.0;
// The refinement splits the panel with the largest error (QUADPACK QAG
// style) until the total error is within tolerance or this many panels.
constexpr std::size_t max_panels = 4000;

struct pair {
  double first = 0.0;   // integral of f * phi
  double second = 0.0;  // integral of f^2 * phi
};

double density(double t) {
  return std::exp(-0.5 * t * t) / std::sqrt(2.0 * std::numbers::pi);
}

class integrator {
 public:
  integrator(const std::function<double(double)>& f, gaussian z) : f_(f), z_(z) {}

  // One panel: the Kronrod estimate and its error, QUADPACK's (QK15): the
  // Kronrod-Gauss difference scaled by (200 d / resasc)^1.5, which on smooth
  // panels is far tighter than the raw difference (the Kronrod rule's
  // error is of much higher order than Gauss's).
  pair panel(double a, double b, pair& error) const {
    const double centre = 0.5 * (a + b);
    const double half = 0.5 * (b - a);
    std::array<pair, 15> values;
    std::array<double, 15> weights;
    pair kronrod, gauss;
    std::size_t n = 0;
    for (std::size_t i = 0; i < kronrod_nodes.size(); ++i) {
      const bool centre_node = i + 1 == kronrod_nodes.size();
      for (const double sign : {-1.0, 1.0}) {
        if (centre_node && sign > 0) break;
        const pair v = at(centre + sign * half * kronrod_nodes[i]);
        values[n] = v;
        weights[n++] = kronrod_weights[i];
        kronrod.first += kronrod_weights[i] * v.first;
        kronrod.second += kronrod_weights[i] * v.second;
        if (i % 2 == 1) {
          gauss.first += gauss_weights[i / 2] * v.first;
          gauss.second += gauss_weights[i / 2] * v.second;
        }
      }
    }
    // resasc: the integral of |f - its mean| over the panel.
    const pair mean{kronrod.first / 2.0, kronrod.second / 2.0};
    pair resasc;
    for (std::size_t k = 0; k < n; ++k) {
      resasc.first += weights[k] * std::abs(values[k].first - mean.first);
      resasc.second += weights[k] * std::abs(values[k].second - mean.second);
    }
    auto scaled = [half](double difference, double asc) {
      const double d = difference * half;
      const double r = asc * half;
      if (r == 0.0 || d == 0.0) return d;
      return r * std::min(1.0, std::pow(200.0 * d / r, 1.5));
    };
    error = {scaled(std::abs(kronrod.first - gauss.first), resasc.first),
             scaled(std::abs(kronrod.second - gauss.second), resasc.second)};
    return {kronrod.first * half, kronrod.second * half};
  }
  pair at(double t) const {
    const double value = f_(z_.mean + z_.std * t);
    const double weight = density(t);
    return {value * weight, value * value * weight};
  }

 private:
  const std::function<double(double)>& f_;
  gaussian z_;
};

// The panel edges on [-half_range, half_range]: panels of initial_panel, split at the
// kinks that fall inside.
std::vector<double> panel_edges(gaussian z, std::span<const double> kinks, double half_range) {
  std::vector<double> edges;
  for (double t = -half_range; t <= half_range + 0.5; t += initial_panel) edges.push_back(t);
  for (const double k : kinks) {
    const double t = (k - z.mean) / z.std;
    if (std::isfinite(t) && t > -half_range && t < half_range) edges.push_back(t);
  }
  std::sort(edges.begin(), edges.end());
  edges.erase(std::unique(edges.begin(), edges.end()), edges.end());
  return edges;
}

struct scored_panel {
  double a = 0.0, b = 0.0;
  pair value, error;
  double worst() const { return std::max(error.first, error.second); }
  bool operator<(const scored_panel& other) const { return worst() < other.worst(); }
};

scored_panel scored(const integrator& g, double a, double b) {
  scored_panel p{a, b, {}, {}};
  p.value = g.panel(a, b, p.error);
  return p;
}

pair integrate(const integrator& g, gaussian z, std::span<const double> kinks, double half_range,
               double relative_tolerance) {
  const std::vector<double> edges = panel_edges(z, kinks, half_range);
  std::priority_queue<scored_panel> panels;
  pair total, error;
  auto add = [&](const scored_panel& p, double sign) {
    total.first += sign * p.value.first;
    total.second += sign * p.value.second;
    error.first += sign * p.error.first;
    error.second += sign * p.error.second;
  };
  for (std::size_t i = 0; i + 1 < edges.size(); ++i) {
    const scored_panel p = scored(g, edges[i], edges[i + 1]);
    add(p, 1.0);
    panels.push(p);
  }
  while (panels.size() < max_panels && std::isfinite(total.first) && std::isfinite(total.second) &&
         (error.first > relative_tolerance * std::abs(total.first) + 1e-300 ||
          error.second > relative_tolerance * std::abs(total.second) + 1e-300)) {
    const scored_panel worst = panels.top();
    panels.pop();
    add(worst, -1.0);
    const double middle = 0.5 * (worst.a + worst.b);
    for (const scored_panel& half : {scored(g, worst.a, middle), scored(g, middle, worst.b)}) {
      add(half, 1.0);
      panels.push(half);
    }
  }
  // Recomputed from the panels: the running sums drift by roundoff.
  total = {};
  for (; !panels.empty(); panels.pop()) {
    total.first += panels.top().value.first;
    total.second += panels.top().value.second;
  }
  return total;
}

// Whether the integrand still has mass at the ends of the range.
bool tails_matter(const integrator& g, double half_range, const pair& total) {
  const pair low = g.at(-half_range);
  const pair high = g.at(half_range);
  const double tail = std::max(
      {std::abs(low.first), std::abs(low.second), std::abs(high.first), std::abs(high.second)});
  return tail > 1e-14 * std::max({std::abs(total.first), std::abs(total.second), 1e-300});
}

}  // namespace

moments gaussian_moments(const std::function<double(double)>& f, gaussian z,
                         std::span<const double> kinks, double relative_tolerance) {
  if (!(z.std > 0.0)) {
    const double value = f(z.mean);
    return {value, value * value};
  }
  const integrator g(f, z);
  double half_range = initial_half_range;
  pair total = integrate(g, z, kinks, half_range, relative_tolerance);
  while (std::isfinite(total.second) && tails_matter(g, half_range, total) &&
         half_range < max_half_range) {
    half_range *= 2.0;
    total = integrate(g, z, kinks, half_range, relative_tolerance);
  }
  if (!std::isfinite(total.first) || !std::isfinite(total.second)) return {NAN, NAN};
  return {total.first, total.second};
}

}  // namespace onnx_reinit::signal
