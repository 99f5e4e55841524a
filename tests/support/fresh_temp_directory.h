// Test support: a new empty directory for a test, named so that tests and
// processes running at once never share one. temp_dir.h and cli_runner.h
// wrap it in an object that removes the directory again.
#pragma once

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <string>

namespace onnx_reinit::test {

// A new empty directory below the system's temporary directory, named
// after `prefix`, the process and a counter.
inline std::filesystem::path fresh_temp_directory(const std::string& prefix) {
  static std::atomic<int> counter{0};
  std::filesystem::path path =
      std::filesystem::temp_directory_path() /
      (prefix + "_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
  std::filesystem::remove_all(path);
  std::filesystem::create_directories(path);
  return path;
}

}  // namespace onnx_reinit::test
