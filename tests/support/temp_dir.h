// A fresh directory for one test case, removed (with everything in it) when
// the test case ends.
#pragma once

#include <filesystem>
#include <string>
#include <system_error>

#include "fresh_temp_directory.h"

namespace onnx_reinit::test {

struct temp_dir {
  std::filesystem::path path;
  explicit temp_dir(const std::string& prefix = "onnx_reinit_test")
      : path(fresh_temp_directory(prefix)) {}
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  std::filesystem::path operator/(const std::string& name) const { return path / name; }
};

}  // namespace onnx_reinit::test
