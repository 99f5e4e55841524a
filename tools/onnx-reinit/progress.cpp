// The progress bar: the pure line formatting and the drawing thread.
#include "progress.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <string_view>

namespace onnx_reinit::cli {
namespace {

constexpr int bar_width = 24;
// Nothing is drawn before this, so quick runs stay quiet; then one redraw
// per period, which a terminal shows smoothly at no measurable cost.
constexpr auto first_draw = std::chrono::milliseconds(500);
constexpr auto redraw_period = std::chrono::milliseconds(200);

// 1000-based units, as disks and network speeds are quoted.
std::string human_bytes(double bytes) {
  constexpr std::string_view units[] = {"kB", "MB", "GB", "TB", "PB"};
  if (bytes < 1000.0) return fmt::format("{:.0f} B", bytes);
  std::size_t u = 0;
  bytes /= 1000.0;
  while (bytes >= 1000.0 && u + 1 < std::size(units)) {
    bytes /= 1000.0;
    ++u;
  }
  return fmt::format("{:.1f} {}", bytes, units[u]);
}

std::string clock_text(double seconds) {
  const auto s = static_cast<std::uint64_t>(std::ceil(seconds));
  if (s >= 3600) return fmt::format("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60);
  return fmt::format("{}:{:02}", s / 60, s % 60);
}

}  // namespace

std::string progress_line(std::uint64_t done, std::uint64_t total, double elapsed) {
  done = std::min(done, total);
  const double share = total == 0 ? 1.0 : static_cast<double>(done) / static_cast<double>(total);
  const int filled = static_cast<int>(share * bar_width);
  std::string line = fmt::format(
      "[{}{}] {:3}%  {} / {}", std::string(filled, '#'), std::string(bar_width - filled, '-'),
      static_cast<int>(share * 100.0), human_bytes(double(done)), human_bytes(double(total)));
  if (done == 0 || !(elapsed > 0.0)) return line + "  -- B/s  --:-- left";
  const double rate = static_cast<double>(done) / elapsed;
  return fmt::format("{}  {}/s  {} left", line, human_bytes(rate),
                     clock_text(static_cast<double>(total - done) / rate));
}

progress_bar::progress_bar(bool enabled, int fd, std::uint64_t total_bytes)
    : fd_(fd),
      active_(enabled && isatty(fd) == 1),
      total_bytes_(total_bytes),
      start_(std::chrono::steady_clock::now()) {
  if (active_) drawer_ = std::thread([this] { draw_loop(); });
}

progress_bar::~progress_bar() {
  finish();
}

std::function<void(std::uint64_t, std::uint64_t)> progress_bar::callback() {
  if (!active_) return {};
  return [this](std::uint64_t done, std::uint64_t total) {
    total_elements_.store(total, std::memory_order_relaxed);
    done_elements_.store(done, std::memory_order_relaxed);
  };
}

void progress_bar::finish() {
  if (!drawer_.joinable()) return;
  {
    const std::lock_guard lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  drawer_.join();
  if (drawn_) draw(true);
}

void progress_bar::draw_loop() {
  std::unique_lock lock(mutex_);
  auto next = start_ + first_draw;
  while (!wake_.wait_until(lock, next, [this] { return stop_; })) {
    draw(false);
    drawn_ = true;
    next += redraw_period;
  }
}

void progress_bar::draw(bool final_line) {
  const std::uint64_t total = total_elements_.load(std::memory_order_relaxed);
  const std::uint64_t done = done_elements_.load(std::memory_order_relaxed);
  // Elements as the same share of the bytes (exact when all tensors have
  // one element type).
  const std::uint64_t bytes =
      total == 0
          ? 0
          : static_cast<std::uint64_t>(static_cast<double>(total_bytes_) *
                                       (static_cast<double>(done) / static_cast<double>(total)));
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  // \r and erase-to-end-of-line redraw in place.
  const std::string text = fmt::format("\r{}\x1b[K{}", progress_line(bytes, total_bytes_, elapsed),
                                       final_line ? "\n" : "");
  // A terminal that refuses a write loses one frame; nothing to recover.
  [[maybe_unused]] const ssize_t written = ::write(fd_, text.data(), text.size());
}

}  // namespace onnx_reinit::cli
