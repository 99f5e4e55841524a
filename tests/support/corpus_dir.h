// Where tools/fetch_corpus.sh puts the real-model corpus (the same default):
// ONNX_REINIT_CORPUS_DIR, else ~/.cache/onnx-reinit/corpus. Tests that read
// real models find them here, never in a directory someone left by hand.
#pragma once

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <vector>

namespace onnx_reinit::test {

inline std::filesystem::path corpus_dir() {
  if (const char* d = std::getenv("ONNX_REINIT_CORPUS_DIR"); d != nullptr && *d != '\0') return d;
  const char* home = std::getenv("HOME");
  return std::filesystem::path(home != nullptr ? home : "/root") / ".cache/onnx-reinit/corpus";
}

// The .onnx files directly in `dir`, sorted; none when it does not exist.
inline std::vector<std::filesystem::path> onnx_files(const std::filesystem::path& dir) {
  std::vector<std::filesystem::path> files;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec))
    if (e.path().extension() == ".onnx") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace onnx_reinit::test
