// --plot FILE.svg|.png: the per-layer output std of one or more inspections
// (original, rewritten, calibrated) on a log scale, drawn with PLplot (its
// "svg" driver, and "pngcairo" from plplot-driver-cairo).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "onnx_reinit/reinit.h"

namespace onnx_reinit::cli {

// Throws usage_error unless `file` ends in .svg or .png, and error when
// the PLplot driver for it is missing.
void check_plot_destination(const std::filesystem::path& file);

// The plot's bytes (the file is written by the caller, with the model);
// throws error when PLplot fails. Layers with a non-finite or zero std are
// left out of their line.
std::string render_std_plot(const std::vector<plot_series>& series,
                            const std::filesystem::path& file);

}  // namespace onnx_reinit::cli
