// Read-only whole-file mappings for model and external data files.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>
#include <fmt/std.h>

#include "io_internal.h"
#include "onnx_reinit/errors.h"

namespace onnx_reinit {

namespace fs = std::filesystem;

std::shared_ptr<const mapped_file> mapped_file::open(const fs::path& path) {
  // O_NONBLOCK: opening a FIFO for reading must not wait for a writer.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0)
    throw io_error(fmt::format("cannot open {}", path), path.string(), io_error::last_errno());
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw io_error(fmt::format("{} is not a regular file", path), path.string());
  }
  std::shared_ptr<mapped_file> file(new mapped_file());
  file->size_ = static_cast<std::size_t>(st.st_size);
  if (file->size_ > 0) {
    void* data = ::mmap(nullptr, file->size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (data == MAP_FAILED) {
      const std::error_code cause = io_error::last_errno();
      ::close(fd);
      throw io_error(fmt::format("cannot map {}", path), path.string(), cause);
    }
    file->data_ = static_cast<const std::byte*>(data);
  }
  ::close(fd);
  return file;
}

mapped_file::~mapped_file() {
  if (data_ != nullptr) ::munmap(const_cast<std::byte*>(data_), size_);
}

}  // namespace onnx_reinit
