// The progress bar of the onnx-reinit command: bytes done of the total,
// throughput and time left, on one line of stderr. The rewriter's workers
// only store counts; a thread of the bar's own redraws the line a few times
// a second, from the first half second on, so short runs show nothing. It
// is silent when asked to be (-q) or when its descriptor is not a terminal.
//
//   onnx_reinit::cli::progress_bar bar(!quiet, STDERR_FILENO, total_bytes);
//   options.progress = bar.callback();  // (elements done, elements total)
//   ... rewrite and save ...
//   bar.finish();
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace onnx_reinit::cli {

// The line for `done` of `total` bytes after `elapsed` seconds, e.g.
// "[##########--------------]  41%  492.0 MB / 1.2 GB  246.0 MB/s  0:03 left".
// Rate and time left read "--" until something is done.
std::string progress_line(std::uint64_t done, std::uint64_t total, double elapsed);

class progress_bar {
 public:
  // Draws on `fd` only when `enabled` and `fd` is a terminal; otherwise
  // every member is a no-op. `total_bytes` is what the whole run writes.
  progress_bar(bool enabled, int fd, std::uint64_t total_bytes);
  ~progress_bar();
  progress_bar(const progress_bar&) = delete;
  progress_bar& operator=(const progress_bar&) = delete;

  // Whether this bar draws at all.
  bool active() const { return active_; }

  // For rewrite_options::progress: element counts, shown as the same share
  // of total_bytes. Empty when inactive. Valid while the bar lives.
  std::function<void(std::uint64_t, std::uint64_t)> callback();

  // Stops the drawing thread; draws the final line if any was drawn.
  void finish();

 private:
  void draw_loop();
  void draw(bool final_line);

  const int fd_;
  const bool active_;
  const std::uint64_t total_bytes_;
  const std::chrono::steady_clock::time_point start_;
  std::atomic<std::uint64_t> done_elements_{0};
  std::atomic<std::uint64_t> total_elements_{0};
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_ = false;   // guarded by mutex_
  bool drawn_ = false;  // the drawing thread's until it is joined
  std::thread drawer_;
};

}  // namespace onnx_reinit::cli
