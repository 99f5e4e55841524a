// The host's error types: one per failure class, each carrying where it
// happened (file, tensor, strategy, parameter). The CLI prints them as
// "onnx-reinit: error: <what> (<where>)". Never thrown across the plugin
// boundary.
#pragma once

#include <cerrno>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>

namespace onnx_reinit {

class error : public std::runtime_error {
 public:
  error(const std::string& what, std::string where)
      : std::runtime_error(what), where_(std::move(where)) {}
  // File, tensor, strategy or parameter the error is about; may be empty.
  const std::string& where() const noexcept { return where_; }

 private:
  std::string where_;
};

// Bad command line or API use (exit status 2).
class usage_error : public error {
  using error::error;
};
// A model that cannot be parsed or is inconsistent.
class model_error : public error {
  using error::error;
};
// External data: missing file, unsafe location, out-of-range offset/length.
class external_data_error : public error {
  using error::error;
};
// Reading or writing files. Like fmt::system_error, it keeps the operating
// system's cause: given a non-zero `code`, the message is "<what>: <reason>"
// ("cannot write file '/x/y': Permission denied") and code() returns it.
class io_error : public error {
 public:
  io_error(const std::string& what, std::string where, std::error_code code = {})
      : error(code ? what + ": " + code.message() : what, std::move(where)), code_(code) {}
  // The cause; empty (value 0) when the failure is not a system error
  // (a file that is not a regular file, a short read of a valid file).
  const std::error_code& code() const noexcept { return code_; }

  // The cause in errno, as left by a failed system call.
  static std::error_code last_errno();

 private:
  std::error_code code_;
};

inline std::error_code io_error::last_errno() {
  return {errno, std::generic_category()};
}
// Unknown strategy name.
class unknown_strategy_error : public error {
  using error::error;
};
// Unknown parameter name, wrong type, or out-of-range value.
class param_error : public error {
  using error::error;
};
// A strategy refused a tensor or failed while filling it.
class strategy_error : public error {
  using error::error;
};
// A user rule that does not parse.
class rule_error : public error {
  using error::error;
};
// A tensor or model beyond the configured size limits.
class limit_error : public error {
  using error::error;
};

}  // namespace onnx_reinit
