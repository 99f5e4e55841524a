// onnx-reinit-bench-run: runs one command and prints "SECONDS MAXRSS_KB" of
// it on stdout (the command's own stdout goes to /dev/null).
//
//   onnx-reinit-bench-run COMMAND [ARGS...]
//
// Why not measure from the python driver: Linux carries a process's peak RSS
// across exec, so a child forked from python starts with python's own peak
// (~50 MB with numpy) and `cp` would look 50 MB large. Forked from this
// small process the floor is about a megabyte. The exit status is the
// command's (128 + signal if it was killed).
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: onnx-reinit-bench-run COMMAND [ARGS...]\n");
    return 2;
  }
  const auto start = std::chrono::steady_clock::now();
  const pid_t pid = ::fork();
  if (pid < 0) {
    std::perror("onnx-reinit-bench-run: fork");
    return 1;
  }
  if (pid == 0) {
    const int null = ::open("/dev/null", O_WRONLY);
    if (null >= 0) ::dup2(null, STDOUT_FILENO);
    ::execvp(argv[1], argv + 1);
    std::fprintf(stderr, "onnx-reinit-bench-run: cannot run %s: %s\n", argv[1],
                 std::strerror(errno));
    ::_exit(127);
  }
  int status = 0;
  rusage usage{};
  if (::wait4(pid, &status, 0, &usage) < 0) {
    std::perror("onnx-reinit-bench-run: wait4");
    return 1;
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("%.6f %ld\n", seconds, usage.ru_maxrss);  // ru_maxrss: KiB on Linux
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return WEXITSTATUS(status);
}
