// parallel_for over an index range: tbb::parallel_for, plus, in a
// ThreadSanitizer build, the ordering TBB guarantees stated to the sanitizer.
#pragma once

#include <tbb/parallel_for.h>

#if defined(__SANITIZE_THREAD__)
#define ONNX_REINIT_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define ONNX_REINIT_TSAN 1
#endif
#endif
#ifdef ONNX_REINIT_TSAN
#include <sanitizer/tsan_interface.h>
#endif

namespace onnx_reinit {

#ifdef ONNX_REINIT_TSAN
// One token for every parallel_for: a worker must acquire before it reads
// anything of the caller's, including the body's captures, so the token's
// address cannot come from the caller's memory.
inline int tsan_parallel_token = 0;

// Scope guards on the token, so both orderings hold on every way out
// (a body that throws included): a worker releases what it wrote when its
// call ends; the caller acquires when it is done waiting.
struct tsan_release_on_exit {
  ~tsan_release_on_exit() { __tsan_release(&tsan_parallel_token); }
};
struct tsan_acquire_on_exit {
  ~tsan_acquire_on_exit() { __tsan_acquire(&tsan_parallel_token); }
};
#endif

// libtbb is not instrumented, so ThreadSanitizer sees none of the
// synchronization by which TBB orders the caller's writes before every call
// of `body` and every call before the return, and would report each shared
// read as a race. A TSan build states those two orderings on a token; every
// other build calls tbb::parallel_for as is.
template <class Index, class Body>
void parallel_for(Index first, Index last, const Body& body) {
#ifdef ONNX_REINIT_TSAN
  // Both orderings hold when a body throws too: TBB waits for the running
  // bodies before it rethrows in the caller, which then unwinds (and frees)
  // what they read.
  // Built before the release: the workers read this closure too.
  const auto annotated = [&body](Index i) {
    __tsan_acquire(&tsan_parallel_token);
    const tsan_release_on_exit release;
    body(i);
  };
  __tsan_release(&tsan_parallel_token);
  const tsan_acquire_on_exit acquire;
  tbb::parallel_for(first, last, annotated);
#else
  tbb::parallel_for(first, last, body);
#endif
}

}  // namespace onnx_reinit
