// Tests of the onnx-reinit progress bar: the line as a function of bytes
// done, total and elapsed time, and that it draws on a terminal and nowhere
// else.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>

#include "progress.h"

using onnx_reinit::cli::progress_bar;
using onnx_reinit::cli::progress_line;

TEST_CASE("the progress line shows bytes, share, throughput and time left") {
  CHECK(progress_line(492'000'000, 1'200'000'000, 2.0) ==
        "[#########---------------]  41%  492.0 MB / 1.2 GB  246.0 MB/s  0:03 left");
  // Half of 3 GB in 10 minutes: 2.5 MB/s, another 10 minutes to go.
  CHECK(progress_line(1'500'000'000, 3'000'000'000, 600.0) ==
        "[############------------]  50%  1.5 GB / 3.0 GB  2.5 MB/s  10:00 left");
  // Hours once past 59:59.
  CHECK(progress_line(1'000'000, 5'000'000'000, 1.0) ==
        "[------------------------]   0%  1.0 MB / 5.0 GB  1.0 MB/s  1:23:19 left");
  CHECK(progress_line(800, 800, 0.5) ==
        "[########################] 100%  800 B / 800 B  1.6 kB/s  0:00 left");
}

TEST_CASE("the progress line has no rate before anything is done") {
  CHECK(progress_line(0, 1'200'000'000, 3.0) ==
        "[------------------------]   0%  0 B / 1.2 GB  -- B/s  --:-- left");
  CHECK(progress_line(5, 10, 0.0) ==
        "[############------------]  50%  5 B / 10 B  -- B/s  --:-- left");
}

namespace {

// Everything readable now on a non-blocking descriptor.
std::string drain(int fd) {
  std::string text;
  char buffer[4096];
  for (ssize_t n; (n = ::read(fd, buffer, sizeof buffer)) > 0;) text.append(buffer, n);
  return text;
}

// Feeds a bar half of the work, waits past the time of its first redraw,
// then the rest.
void run_bar(progress_bar& bar) {
  auto progress = bar.callback();
  if (progress) progress(50, 100);
  std::this_thread::sleep_for(std::chrono::milliseconds(900));
  if (progress) progress(100, 100);
  bar.finish();
}

struct pseudo_terminal {
  int master = -1, slave = -1;
  pseudo_terminal() {
    master = posix_openpt(O_RDWR | O_NOCTTY);
    REQUIRE(master >= 0);
    REQUIRE(grantpt(master) == 0);
    REQUIRE(unlockpt(master) == 0);
    slave = ::open(ptsname(master), O_RDWR | O_NOCTTY);
    REQUIRE(slave >= 0);
    REQUIRE(fcntl(master, F_SETFL, O_NONBLOCK) == 0);
  }
  ~pseudo_terminal() {
    ::close(slave);
    ::close(master);
  }
};

}  // namespace

TEST_CASE("the progress bar draws on a terminal and ends its line") {
  pseudo_terminal tty;
  progress_bar bar(true, tty.slave, 2'000'000);
  REQUIRE(bar.active());
  auto progress = bar.callback();
  progress(50, 100);
  // The first redraw comes after half a second; a loaded machine may take
  // longer, so wait for it (up to a minute) rather than for a fixed time.
  std::string text;
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::minutes(1);
  while (text.find(" 50%") == std::string::npos && std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    text += drain(tty.master);
  }
  progress(100, 100);
  bar.finish();
  text += drain(tty.master);
  INFO(text);
  // A redraw at half, then the final line at 100%, ended by a newline (the
  // terminal turns \n into \r\n).
  CHECK(text.find(" 50%  1.0 MB / 2.0 MB") != std::string::npos);
  CHECK(text.find("100%  2.0 MB / 2.0 MB") != std::string::npos);
  CHECK(text.back() == '\n');
}

TEST_CASE("the progress bar prints nothing when not on a terminal or when quiet") {
  SECTION("a pipe") {
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    REQUIRE(fcntl(fds[0], F_SETFL, O_NONBLOCK) == 0);
    progress_bar bar(true, fds[1], 2'000'000);
    CHECK_FALSE(bar.active());
    CHECK_FALSE(bar.callback());
    run_bar(bar);
    CHECK(drain(fds[0]).empty());
    ::close(fds[0]);
    ::close(fds[1]);
  }
  SECTION("quiet, on a terminal") {
    pseudo_terminal tty;
    progress_bar bar(false, tty.slave, 2'000'000);
    CHECK_FALSE(bar.active());
    run_bar(bar);
    CHECK(drain(tty.master).empty());
  }
}
