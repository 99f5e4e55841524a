// Read-only whole-file mappings for model and external data files.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
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
  file->path_ = path;
  file->device_ = st.st_dev;
  file->inode_ = st.st_ino;
  file->mtime_ns_ = st.st_mtim.tv_sec * std::int64_t{1000000000} + st.st_mtim.tv_nsec;
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

int mapped_file::reopen() const {
  const int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return -1;
  struct stat st {};
  const bool same = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_dev == device_ &&
                    st.st_ino == inode_ && static_cast<std::size_t>(st.st_size) == size_ &&
                    st.st_mtim.tv_sec * std::int64_t{1000000000} + st.st_mtim.tv_nsec == mtime_ns_;
  if (same) return fd;
  ::close(fd);
  return -1;
}

void mapped_file::release(std::uint64_t offset, std::uint64_t length) const {
  if (data_ == nullptr || length == 0 || offset >= size_) return;
  // Widened to whole 2 MiB blocks: the page cache holds large folios, and a
  // fault maps a whole folio, so reading a tensor's first MiB mapped up to
  // the next 2 MiB boundary; releasing only what was read left 21 MB of the
  // 1.2 GB bench model's data file resident after the analysis. Dropping a
  // neighbour's pages is harmless: the mapping is private and read-only, so
  // a later read faults the same bytes in again.
  constexpr std::uint64_t block = std::uint64_t{2} << 20;
  const std::uint64_t begin = offset / block * block;
  const std::uint64_t end =
      std::min<std::uint64_t>(size_, (offset + length + block - 1) / block * block);
  // Advice only: a refusal leaves the pages resident, nothing else.
  ::madvise(const_cast<std::byte*>(data_) + begin, static_cast<std::size_t>(end - begin),
            MADV_DONTNEED);
}

mapped_file::~mapped_file() {
  if (data_ != nullptr) ::munmap(const_cast<std::byte*>(data_), size_);
}

}  // namespace onnx_reinit
