// Where tools/fetch_corpus.sh puts the real-model corpus (the same default):
// ONNX_REINIT_CORPUS_DIR, else ~/.cache/onnx-reinit/corpus. Tests that read
// real models find them here, never in a directory someone left by hand.
#pragma once

#include <cstdlib>
#include <filesystem>

namespace onnx_reinit::test {

inline std::filesystem::path corpus_dir() {
  if (const char* d = std::getenv("ONNX_REINIT_CORPUS_DIR"); d != nullptr && *d != '\0') return d;
  const char* home = std::getenv("HOME");
  return std::filesystem::path(home != nullptr ? home : "/root") / ".cache/onnx-reinit/corpus";
}

}  // namespace onnx_reinit::test
