// Test support: running the onnx-reinit executable as a child process (no
// shell; stdout, stderr, exit status and peak RSS captured) and the file and
// temp-directory helpers the CLI tests share. The including test defines
// ONNX_REINIT_CLI, the path of the built executable.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <onnx/onnx_pb.h>
#include <catch2/catch.hpp>

#include "fresh_temp_directory.h"

extern char** environ;

namespace onnx_reinit::test {

namespace fs = std::filesystem;

// ---------------------------------------------------------------------------
// Running the command

struct run_result {
  int status = -1;
  std::string out;
  std::string err;
  long peak_rss_kb = 0;  // the child's peak resident set (wait4's ru_maxrss)
};

// Runs the CLI with `args` (no shell involved), stdin from /dev/null.
// ONNX_REINIT_PLUGIN_PATH is empty unless `env` sets it, so only the build
// tree's plugin directory is searched whatever the caller's environment.
inline run_result run_cli(const std::vector<std::string>& args,
                          const std::vector<std::string>& env = {}) {
  std::vector<std::string> env_strings = env;
  if (std::none_of(env.begin(), env.end(), [](const std::string& e) {
        return e.rfind("ONNX_REINIT_PLUGIN_PATH=", 0) == 0;
      }))
    env_strings.emplace_back("ONNX_REINIT_PLUGIN_PATH=");
  auto overridden = [&](const char* entry) {
    for (const std::string& e : env_strings) {
      const std::string key = e.substr(0, e.find('=') + 1);
      if (std::strncmp(entry, key.c_str(), key.size()) == 0) return true;
    }
    return false;
  };
  std::vector<char*> envp;
  for (char** e = environ; *e != nullptr; ++e)
    if (!overridden(*e)) envp.push_back(*e);
  for (std::string& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);

  std::vector<std::string> argv_strings{ONNX_REINIT_CLI};
  argv_strings.insert(argv_strings.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& a : argv_strings) argv.push_back(a.data());
  argv.push_back(nullptr);

  int out_pipe[2];
  int err_pipe[2];
  REQUIRE(pipe2(out_pipe, O_CLOEXEC) == 0);
  REQUIRE(pipe2(err_pipe, O_CLOEXEC) == 0);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, err_pipe[1], STDERR_FILENO);
  pid_t pid = 0;
  const int spawned = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  close(out_pipe[1]);
  close(err_pipe[1]);
  if (spawned != 0) {
    close(out_pipe[0]);
    close(err_pipe[0]);
    FAIL("cannot start " << ONNX_REINIT_CLI << ": " << std::strerror(spawned));
  }

  // Drain both pipes together so a child filling one of them cannot block.
  run_result result;
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  std::string* sinks[2] = {&result.out, &result.err};
  int open_pipes = 2;
  while (open_pipes > 0) {
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      char buffer[65536];
      const ssize_t n = read(fds[i].fd, buffer, sizeof buffer);
      if (n > 0) {
        sinks[i]->append(buffer, static_cast<std::size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_pipes;
      }
    }
  }
  int wstatus = 0;
  rusage usage{};
  while (wait4(pid, &wstatus, 0, &usage) < 0 && errno == EINTR) {
  }
  result.peak_rss_kb = usage.ru_maxrss;
  result.status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
  return result;
}

inline bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

inline std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// Exit status `status` and exactly one line on stderr in the documented form,
// mentioning each of `mentions`.
inline void check_error(const run_result& r, int status, const std::vector<std::string>& mentions) {
  INFO("stdout: " << r.out << "\nstderr: " << r.err);
  CHECK(r.status == status);
  CHECK(r.out.empty());
  CHECK(r.err.rfind("onnx-reinit: error: ", 0) == 0);
  CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
  CHECK((!r.err.empty() && r.err.back() == '\n'));
  for (const std::string& m : mentions) CHECK(contains(r.err, m));
}

// ---------------------------------------------------------------------------
// Files

inline std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in.good());
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

inline void write_file(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
  out.close();
  REQUIRE(out.good());
}

inline void save_proto(const onnx::ModelProto& model, const fs::path& path) {
  std::string bytes;
  REQUIRE(model.SerializeToString(&bytes));
  write_file(path, bytes);
}

inline onnx::ModelProto read_proto(const fs::path& path) {
  onnx::ModelProto model;
  REQUIRE(model.ParseFromString(read_file(path)));
  return model;
}

// A fresh directory per test, removed with everything in it.
class temp_dir {
 public:
  temp_dir() : path_(fresh_temp_directory("onnx-reinit-cli")) {}
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  fs::path operator/(const std::string& name) const { return path_ / name; }
  const fs::path& path() const { return path_; }

  // Every file below the directory with its bytes: a failed run must leave
  // this unchanged (input untouched, no output, no temp file left behind).
  std::map<std::string, std::string> snapshot() const {
    std::map<std::string, std::string> files;
    for (const auto& e : fs::recursive_directory_iterator(path_))
      files[fs::relative(e.path(), path_).string()] =
          e.is_regular_file() ? read_file(e.path()) : "";
    return files;
  }

 private:
  fs::path path_;
};

}  // namespace onnx_reinit::test
