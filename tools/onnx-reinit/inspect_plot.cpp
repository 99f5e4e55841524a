// The --plot figure with PLplot: one line per inspection, layer index on x,
// log10 of the output std on y, a dashed reference at std 1.
#include "inspect_plot.h"

#include <fmt/format.h>
#include <plplot/plstream.h>
#include <stdlib.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iterator>
#include <memory>

namespace onnx_reinit::cli {

namespace {

namespace fs = std::filesystem;

// PLplot's device for the file's extension; "" for other extensions.
std::string device_for(const fs::path& file) {
  const std::string ext = file.extension().string();
  if (ext == ".svg") return "svg";
  if (ext == ".png") return "pngcairo";
  return {};
}

bool device_available(const std::string& device) {
  // The caller owns the arrays; n is their size in, the device count out.
  std::vector<const char*> menu_storage(128), name_storage(128);
  const char** menus = menu_storage.data();
  const char** names = name_storage.data();
  int n = static_cast<int>(name_storage.size());
  plgDevs(&menus, &names, &n);
  for (int i = 0; i < n; ++i)
    if (device == names[i]) return true;
  return false;
}

// A private directory for PLplot's output, removed with everything in it.
struct scratch_dir {
  fs::path path;
  scratch_dir() {
    std::string pattern = (fs::temp_directory_path() / "onnx-reinit-plot-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr)
      throw error("cannot create a temporary directory for the plot", pattern);
    path = pattern;
  }
  ~scratch_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  scratch_dir(const scratch_dir&) = delete;
  scratch_dir& operator=(const scratch_dir&) = delete;
};

// Colour map 0: white background, black axes, then one colour per series
// (blue, orange, green, as matplotlib's first three) and grey.
constexpr int series_colour = 2;
constexpr int grey = 5;
void set_colours(plstream& pls) {
  const PLINT r[] = {255, 0, 31, 255, 44, 150};
  const PLINT g[] = {255, 0, 119, 127, 160, 150};
  const PLINT b[] = {255, 0, 180, 14, 44, 150};
  pls.scmap0(r, g, b, 6);
}

struct bounds {
  double lo = 0.0, hi = 0.0;
  std::size_t layers = 0;
};
bounds bounds_of(const std::vector<plot_series>& series) {
  bounds b{std::numeric_limits<double>::infinity(), -std::numeric_limits<double>::infinity(), 0};
  for (const auto& s : series) {
    b.layers = std::max(b.layers, s.data->layers.size());
    for (const auto& l : s.data->layers)
      if (std::isfinite(l.std) && l.std > 0) {
        b.lo = std::min(b.lo, std::log10(l.std));
        b.hi = std::max(b.hi, std::log10(l.std));
      }
  }
  if (!std::isfinite(b.lo)) b = {0.0, 0.0, b.layers};
  // Std 1 (log 0) is always in view, with half a decade of margin.
  b.lo = std::floor(std::min(b.lo, 0.0) - 0.5);
  b.hi = std::ceil(std::max(b.hi, 0.0) + 0.5);
  return b;
}

// One series as line segments over its runs of finite, positive stds.
void draw_series(plstream& pls, const inspection& r, int colour) {
  pls.col0(colour);
  pls.width(2.0);
  std::vector<PLFLT> x, y;
  auto flush = [&] {
    if (!x.empty()) {
      pls.line(static_cast<PLINT>(x.size()), x.data(), y.data());
      pls.poin(static_cast<PLINT>(x.size()), x.data(), y.data(), 17);
    }
    x.clear();
    y.clear();
  };
  for (std::size_t i = 0; i < r.layers.size(); ++i) {
    const double s = r.layers[i].std;
    if (!(std::isfinite(s) && s > 0)) {
      flush();
      continue;
    }
    x.push_back(static_cast<double>(i + 1));
    y.push_back(std::log10(s));
  }
  flush();
}

void draw_legend(plstream& pls, const std::vector<plot_series>& series) {
  const auto n = static_cast<PLINT>(series.size());
  std::vector<PLINT> opts(series.size(), PL_LEGEND_LINE), colours, styles(series.size(), 1),
      text_colours(series.size(), 1);
  std::vector<PLFLT> widths(series.size(), 2.0);
  std::vector<const char*> text;
  for (std::size_t i = 0; i < series.size(); ++i) {
    colours.push_back(series_colour + static_cast<PLINT>(i));
    text.push_back(series[i].label.c_str());
  }
  PLFLT w = 0.0, h = 0.0;
  pls.legend(&w, &h, PL_LEGEND_BACKGROUND | PL_LEGEND_BOUNDING_BOX, PL_POSITION_TOP, 0.0, 0.02, 0.1,
             0, 1, 1, n, 1, n, opts.data(), 1.0, 0.9, 2.0, 0.0, text_colours.data(), text.data(),
             nullptr, nullptr, nullptr, nullptr, colours.data(), styles.data(), widths.data(),
             nullptr, nullptr, nullptr, nullptr);
}

void draw(plstream& pls, const std::vector<plot_series>& series) {
  const bounds b = bounds_of(series);
  pls.col0(1);
  pls.width(1.0);
  // axis 20: log10 tick labels on y.
  pls.env(0.5, static_cast<double>(b.layers) + 0.5, b.lo, b.hi, 0, 20);
  pls.lab("weighted layer (topological order)", "output std (log scale)",
          "Per-layer output std on the batch");
  const PLFLT rx[] = {0.5, static_cast<double>(b.layers) + 0.5}, ry[] = {0.0, 0.0};
  pls.col0(grey);
  pls.lsty(2);
  pls.line(2, rx, ry);
  pls.lsty(1);
  for (std::size_t i = 0; i < series.size(); ++i)
    draw_series(pls, *series[i].data, series_colour + static_cast<int>(i));
  draw_legend(pls, series);
}

}  // namespace

void check_plot_destination(const fs::path& file) {
  const std::string device = device_for(file);
  if (device.empty())
    throw usage_error(
        fmt::format("--plot '{}': the file name must end in .svg or .png", file.string()),
        "command line");
  if (!device_available(device))
    throw error(fmt::format("PLplot has no '{}' driver for --plot '{}'{}", device, file.string(),
                            device == "pngcairo" ? " (install plplot-driver-cairo)" : ""),
                "PLplot");
}

std::string render_std_plot(const std::vector<plot_series>& series, const fs::path& file) {
  check_plot_destination(file);
  if (series.empty() || series.size() > 3) throw error("one to three series to plot", "--plot");
  scratch_dir dir;
  const fs::path out = dir.path / ("plot" + file.extension().string());
  {
    plstream pls;
    pls.sdev(device_for(file).c_str());
    pls.sfnam(out.c_str());
    pls.spage(0.0, 0.0, 960, 600, 0, 0);
    set_colours(pls);
    pls.init();
    draw(pls, series);
  }  // the stream ends here: the file is complete
  std::ifstream f(out, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (!f.good() && !f.eof()) throw error("PLplot wrote no readable plot", file.string());
  if (bytes.empty()) throw error("PLplot wrote an empty plot", file.string());
  return bytes;
}

}  // namespace onnx_reinit::cli
