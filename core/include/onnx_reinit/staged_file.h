// Writing a small file (a report, a plot) so that it appears whole or not
// at all: staged beside its destination, fsynced, renamed into place on
// commit. Returned from save_options::before_commit, staged files join the
// model's published set instead (docs/DESIGN.md section 10): the model, its
// data files and these files appear together or not at all, also across a
// kill (recover_publications).
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
  // Empty once committed or released.
  const std::filesystem::path& temp_path() const { return temp_; }
  // Hands the temp file over (save_model publishes it with the model): it
  // is no longer removed by this object. Returns its path.
  std::filesystem::path release() noexcept;

 private:
  void discard() noexcept;
  std::filesystem::path destination_;
  std::filesystem::path temp_;
};

// staged_file(path, contents).commit().
void write_file_atomically(const std::filesystem::path& path, std::string_view contents);

// Finishes or clears what saves to `out` killed midway left: each of its
// staging directories (".<name>.onnx-reinit-XXXXXX" beside it) that no
// live process holds is either rolled forward (its journal was committed:
// every file of the set is renamed into place, the obsolete data files
// removed) or removed (never committed: nothing of it is visible).
// save_model calls it first; idempotent. Throws io_error when a committed
// set cannot be finished (a fresh data file name taken meanwhile).
void recover_publications(const std::filesystem::path& out);

}  // namespace onnx_reinit
