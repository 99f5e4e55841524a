// overlap: run one piece of work as a TBB task while the caller runs
// another, then wait for both (the writer samples the next window while it
// writes this one). In a ThreadSanitizer build the ordering TBB guarantees
// is stated to the sanitizer, as parallel_for.h does.
//
//   overlap([&] { source.read(next, spare); },   // on a worker
//           [&] { out.write(current); });        // on the caller
#pragma once

#include <tbb/task_group.h>

#include "parallel_for.h"

namespace onnx_reinit {

// Runs `background` on a worker (or on the caller, when it waits, if no
// worker took it) and `foreground` on the caller; returns when both are
// done. An exception from `foreground` is rethrown after `background`
// finished (its own exception, if any, is then dropped: the first error is
// the one reported); otherwise one from `background` is rethrown.
template <class Background, class Foreground>
void overlap(const Background& background, const Foreground& foreground) {
  tbb::task_group group;
#ifdef ONNX_REINIT_TSAN
  // libtbb is not instrumented: state that the caller's writes happen before
  // the task, and the task's before the caller's return from wait().
  __tsan_release(&tsan_parallel_token);
  group.run([&background] {
    __tsan_acquire(&tsan_parallel_token);
    const tsan_release_on_exit release;
    background();
  });
  const tsan_acquire_on_exit acquire;
#else
  group.run([&background] { background(); });
#endif
  try {
    foreground();
  } catch (...) {
    group.cancel();
    try {
      group.wait();
    } catch (...) {  // NOLINT(bugprone-empty-catch): the caller's error wins
    }
    throw;
  }
  group.wait();
}

}  // namespace onnx_reinit
