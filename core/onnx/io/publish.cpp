// Publishing a staged set of files (model, data files, report, plot) as
// one step: a journal whose rename is the commit point, a roll-forward that
// any later save to the same output repeats, and a lock that tells a live
// writer's staging directory from a dead one's. docs/DESIGN.md section 10.
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <iterator>
#include <optional>
#include <set>
#include <string>
#include <utility>

#include <fmt/format.h>
#include <fmt/std.h>

#include "io_internal.h"
#include "onnx_reinit/errors.h"
#include "onnx_reinit/staged_file.h"

namespace onnx_reinit {

namespace fs = std::filesystem;

void (*publish_step_hook)(int step) = nullptr;

void fsync_directory(const fs::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

namespace {

constexpr const char* journal_name = "journal";
// Staged files outside the directory (a report beside its destination),
// removed with it when a save dies before its commit point.
constexpr const char* owned_name = "owned";

void step(int n) {
  if (publish_step_hook != nullptr) publish_step_hook(n);
}

[[noreturn]] void fail(const std::string& what, const fs::path& where, std::error_code cause) {
  throw io_error(what, where.string(), cause);
}

// ".<name>.onnx-reinit-": the prefix of OUT's staging directories.
std::string staging_prefix(const fs::path& out) {
  return fmt::format(".{}.onnx-reinit-", out.filename().string());
}

// An exclusive flock on `dir`, or -1 when another process holds it. The
// lock dies with its process, SIGKILL included.
int try_lock(const fs::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return -1;
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// The journal: one record per step, fields ended by NUL (no path holds
// one): "R" staged final (a fresh name: never replaces a file), "r" staged
// final (replaces), "D" path (removed once everything is in place).
std::string journal_text(const std::vector<publish_rename>& renames,
                         const std::vector<fs::path>& obsolete) {
  std::string text;
  auto field = [&](const std::string& s) {
    text += s;
    text += '\0';
  };
  for (const publish_rename& r : renames) {
    field(r.fresh ? "R" : "r");
    field(r.staged.string());
    field(r.final.string());
  }
  for (const fs::path& p : obsolete) {
    field("D");
    field(p.string());
  }
  return text;
}

struct journal {
  std::vector<publish_rename> renames;
  std::vector<fs::path> obsolete;
};

// nullopt for a journal that does not parse (never written whole: the
// commit rename makes only whole journals visible, so this is damage).
std::optional<journal> parse_journal(const std::string& text) {
  std::vector<std::string> fields;
  std::size_t start = 0;
  for (std::size_t i = 0; i < text.size(); ++i)
    if (text[i] == '\0') {
      fields.push_back(text.substr(start, i - start));
      start = i + 1;
    }
  if (start != text.size()) return std::nullopt;
  journal j;
  for (std::size_t i = 0; i < fields.size();) {
    if ((fields[i] == "R" || fields[i] == "r") && i + 2 < fields.size()) {
      j.renames.push_back({fields[i + 1], fields[i + 2], fields[i] == "R"});
      i += 3;
    } else if (fields[i] == "D" && i + 1 < fields.size()) {
      j.obsolete.emplace_back(fields[i + 1]);
      i += 2;
    } else {
      return std::nullopt;
    }
  }
  return j;
}

// rename(2), or renameat2 with RENAME_NOREPLACE for a fresh name (a file
// that appeared there since the name was chosen is never replaced).
void rename_into_place(const publish_rename& r) {
  std::error_code ec;
  fs::create_directories(r.final.parent_path(), ec);
  if (ec) fail(fmt::format("cannot publish {}", r.final), r.final, ec);
  int rc = 0;
  if (r.fresh) {
    rc = ::renameat2(AT_FDCWD, r.staged.c_str(), AT_FDCWD, r.final.c_str(), RENAME_NOREPLACE);
    // File systems without the flag: check, then rename.
    if (rc != 0 && errno == EINVAL) {
      if (fs::exists(fs::symlink_status(r.final, ec)))
        fail(fmt::format("cannot publish {}: the name was taken meanwhile", r.final), r.final,
             std::make_error_code(std::errc::file_exists));
      rc = ::rename(r.staged.c_str(), r.final.c_str());
    }
  } else {
    rc = ::rename(r.staged.c_str(), r.final.c_str());
  }
  if (rc != 0) fail(fmt::format("cannot publish {}", r.final), r.final, io_error::last_errno());
}

// Removes the staging directory, its journal last: a kill midway leaves a
// directory that either still has the (replayable) journal or is plain
// leftovers.
void remove_stage(const fs::path& stage) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(stage, ec))
    if (e.path().filename() != journal_name) fs::remove_all(e.path(), ec);
  fs::remove(stage / journal_name, ec);
  fs::remove(stage, ec);
}

// The hidden temps an uncommitted save listed as its own; only hidden
// names, so a damaged list cannot remove a visible file.
void remove_owned(const fs::path& stage) {
  std::ifstream in(stage / owned_name, std::ios::binary);
  std::string temp;
  while (std::getline(in, temp, '\0')) {
    const fs::path p(temp);
    if (!p.is_absolute() || !p.filename().string().starts_with(".")) continue;
    std::error_code ec;
    fs::remove(p, ec);
  }
}

// Everything after the commit point; idempotent, so recovery can repeat a
// roll-forward cut short at any step. A staged file that is gone was
// renamed already.
void roll_forward(const fs::path& stage, const journal& j, int first_step) {
  std::set<fs::path> dirs;
  int n = first_step;
  for (const publish_rename& r : j.renames) {
    std::error_code ec;
    if (fs::exists(fs::symlink_status(r.staged, ec))) rename_into_place(r);
    dirs.insert(r.final.parent_path());
    step(++n);
  }
  for (const fs::path& d : dirs) fsync_directory(d);
  for (const fs::path& p : j.obsolete) {
    std::error_code ec;
    fs::remove(p, ec);
  }
  for (const fs::path& d : dirs) fsync_directory(d);
  step(++n);
  remove_stage(stage);
}

}  // namespace

staging_area::staging_area(const fs::path& out) : out_(out) {
  recover_publications(out);
  std::string pattern = (out.parent_path() / (staging_prefix(out) + "XXXXXX")).string();
  if (::mkdtemp(pattern.data()) == nullptr)
    throw io_error(fmt::format("cannot create a temporary directory in {}", out.parent_path()),
                   out.string(), io_error::last_errno());
  path_ = pattern;
  lock_ = try_lock(path_);
  if (lock_ < 0) {
    const std::error_code cause = io_error::last_errno();
    remove_stage(path_);
    throw io_error(fmt::format("cannot lock the staging directory {}", path_), out.string(), cause);
  }
}

staging_area::~staging_area() {
  if (!published_) {
    std::error_code ec;
    for (const fs::path& temp : owned_) fs::remove(temp, ec);
    remove_stage(path_);
  }
  ::close(lock_);
}

void staging_area::own(const fs::path& temp) {
  owned_.push_back(temp);
  // Appended, not fsynced: it only helps recovery clear hidden temps.
  std::ofstream list(path_ / owned_name, std::ios::binary | std::ios::app);
  list << temp.string() << '\0';
}

void staging_area::publish(const std::vector<publish_rename>& renames,
                           const std::vector<fs::path>& obsolete) {
  const journal j{renames, obsolete};
  step(0);
  staged_file journal_file(path_ / journal_name, journal_text(renames, obsolete));  // fsynced
  step(1);
  // The commit point, the journal's rename (fsynced): from here on the set
  // is published, by this process or, if it dies, by the next save to the
  // same output.
  journal_file.commit();
  published_ = true;
  step(2);
  roll_forward(path_, j, 2);
}

void recover_publications(const fs::path& out_arg) {
  std::error_code ec;
  const fs::path out = fs::absolute(out_arg, ec).lexically_normal();
  if (ec) return;
  const std::string prefix = staging_prefix(out);
  std::vector<fs::path> stages;
  for (const auto& e : fs::directory_iterator(out.parent_path(), ec))
    if (e.path().filename().string().starts_with(prefix) && e.is_directory(ec))
      stages.push_back(e.path());
  for (const fs::path& stage : stages) {
    const int lock = try_lock(stage);
    if (lock < 0) continue;  // a live writer's, or gone
    std::ifstream in(stage / journal_name, std::ios::binary);
    if (!in) {
      remove_owned(stage);  // never committed: nothing of it is visible
      remove_stage(stage);
      ::close(lock);
      continue;
    }
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const std::optional<journal> j = parse_journal(text);
    try {
      if (!j)
        throw io_error("the publishing journal is damaged", (stage / journal_name).string(),
                       std::make_error_code(std::errc::io_error));
      roll_forward(stage, *j, 2);
    } catch (...) {
      ::close(lock);
      throw;
    }
    ::close(lock);
  }
}

}  // namespace onnx_reinit
