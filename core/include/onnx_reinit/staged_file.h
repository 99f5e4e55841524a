// Writing a small file (a report) so that it appears whole or not at all:
// staged beside its destination, fsynced, renamed into place on commit. Used
// with save_options::before_commit, the report is staged before the model's
// commit rename and renamed right after it, so a failure writes neither.
#pragma once

#include <filesystem>
#include <string_view>

namespace onnx_reinit {

// Checks, before anything is written, that `path` can be created or
// replaced as a regular file: its directory exists and is writable, and
// `path` is not a directory. Throws io_error carrying the cause
// (ENOENT, ENOTDIR, EACCES, EISDIR) naming `path`.
void check_writable_file(const std::filesystem::path& path);

// `contents` written to a hidden temp file in the destination's directory
// (same file system, so the rename is atomic) and fsynced. commit() renames
// it over the destination; without a commit the temp file is removed.
// Throws io_error with the cause (ENOSPC, EACCES, ...) naming the destination.
class staged_file {
 public:
  staged_file(const std::filesystem::path& destination, std::string_view contents);
  ~staged_file();
  staged_file(staged_file&& other) noexcept;
  staged_file& operator=(staged_file&& other) noexcept;
  staged_file(const staged_file&) = delete;
  staged_file& operator=(const staged_file&) = delete;

  void commit();
  const std::filesystem::path& destination() const { return destination_; }
  // Empty once committed.
  const std::filesystem::path& temp_path() const { return temp_; }

 private:
  void discard() noexcept;
  std::filesystem::path destination_;
  std::filesystem::path temp_;
};

// staged_file(path, contents).commit().
void write_file_atomically(const std::filesystem::path& path, std::string_view contents);

}  // namespace onnx_reinit
