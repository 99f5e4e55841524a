// Small files written whole or not at all: temp file beside the
// destination, fsync, rename (see staged_file.h).
#include "onnx_reinit/staged_file.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <system_error>
#include <utility>

#include <fmt/format.h>
#include <fmt/std.h>

#include "io_internal.h"
#include "onnx_reinit/errors.h"

namespace onnx_reinit {

namespace fs = std::filesystem;

namespace {

fs::path absolute_of(const fs::path& path) {
  std::error_code ec;
  fs::path a = fs::absolute(path, ec);
  return ec ? path : a.lexically_normal();
}

[[noreturn]] void fail(const fs::path& path, std::error_code cause) {
  throw io_error(fmt::format("cannot write file '{}'", path.string()), path.string(), cause);
}

}  // namespace

void check_writable_file(const fs::path& path) {
  const fs::path target = absolute_of(path);
  if (target.filename().empty() || target.filename() == "." || target.filename() == "..")
    fail(path, std::make_error_code(std::errc::is_a_directory));
  std::error_code ec;
  const fs::path dir = target.parent_path();
  const fs::file_status dir_status = fs::status(dir, ec);
  if (ec) fail(path, ec);
  if (!fs::is_directory(dir_status)) fail(path, std::make_error_code(std::errc::not_a_directory));
  if (::access(dir.c_str(), W_OK | X_OK) != 0) fail(path, io_error::last_errno());
  const fs::file_status status = fs::status(target, ec);
  if (fs::is_directory(status)) fail(path, std::make_error_code(std::errc::is_a_directory));
}

staged_file::staged_file(const fs::path& destination, std::string_view contents)
    : destination_(absolute_of(destination)) {
  check_writable_file(destination_);
  // fmt rather than "." + string: GCC 12 at -O3 misreports that form
  // (-Wrestrict false positive).
  std::string pattern =
      (destination_.parent_path() / fmt::format(".{}.tmp-XXXXXX", destination_.filename().string()))
          .string();
  const int fd = ::mkostemp(pattern.data(), O_CLOEXEC);
  if (fd < 0) fail(destination_, io_error::last_errno());
  temp_ = pattern;
  std::error_code cause;
  const char* data = contents.data();
  std::size_t left = contents.size();
  while (left > 0 && !cause) {
    const ssize_t n = ::write(fd, data, left);
    if (n < 0) {
      if (errno != EINTR) cause = io_error::last_errno();
      continue;
    }
    data += n;
    left -= static_cast<std::size_t>(n);
  }
  // Readable like the model (0644), not mkstemp's 0600. (Reading the umask
  // would mean setting it, which races with other threads creating files.)
  if (!cause && ::fchmod(fd, 0644) != 0) cause = io_error::last_errno();
  if (!cause && ::fsync(fd) != 0) cause = io_error::last_errno();
  if (::close(fd) != 0 && !cause) cause = io_error::last_errno();
  if (cause) {
    discard();
    fail(destination_, cause);
  }
}

staged_file::~staged_file() {
  discard();
}

staged_file::staged_file(staged_file&& other) noexcept
    : destination_(std::move(other.destination_)), temp_(std::exchange(other.temp_, {})) {}

staged_file& staged_file::operator=(staged_file&& other) noexcept {
  if (this != &other) {
    discard();
    destination_ = std::move(other.destination_);
    temp_ = std::exchange(other.temp_, {});
  }
  return *this;
}

void staged_file::discard() noexcept {
  if (temp_.empty()) return;
  std::error_code ec;
  fs::remove(temp_, ec);
  temp_.clear();
}

void staged_file::commit() {
  if (temp_.empty()) return;
  if (::rename(temp_.c_str(), destination_.c_str()) != 0) {
    const std::error_code cause = io_error::last_errno();
    discard();
    fail(destination_, cause);
  }
  temp_.clear();
  fsync_directory(destination_.parent_path());
}

fs::path staged_file::release() noexcept {
  return std::exchange(temp_, {});
}

void write_file_atomically(const fs::path& path, std::string_view contents) {
  staged_file(path, contents).commit();
}

}  // namespace onnx_reinit
