// A one-line status on stderr for the long phases of a command (plan, bench, demo), drawn only
// when stderr is a terminal: show() overwrites the line ("\r", then clear to its end) with the
// label, the phase and the seconds since the start; finish() (and the destructor) clears it, so
// nothing of it stays in a terminal's scrollback or reaches a pipe or a file. Redrawn at most
// 10 times a second unless the phase text changes. Not thread-safe; one per command.
// (ProgressBar in cli_options.h is its counterpart for loops with a known step count.)
#pragma once

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <utility>

namespace swiftbalancer::cli {

class StatusLine {
 public:
  explicit StatusLine(std::string label)
      : label_(std::move(label)),
        enabled_(::isatty(::fileno(stderr)) != 0),
        t0_(std::chrono::steady_clock::now()) {}
  ~StatusLine() { finish(); }
  StatusLine(const StatusLine&) = delete;
  StatusLine& operator=(const StatusLine&) = delete;

  bool enabled() const { return enabled_; }

  void show(const std::string& phase) {
    if (!enabled_) return;
    const auto now = std::chrono::steady_clock::now();
    if (phase == phase_ && now - last_ < std::chrono::milliseconds(100)) return;
    phase_ = phase;
    last_ = now;
    const double s = std::chrono::duration<double>(now - t0_).count();
    std::fprintf(stderr, "\r\033[K%s: %s (%.1f s)", label_.c_str(), phase.c_str(), s);
    std::fflush(stderr);
    drawn_ = true;
  }

  void finish() {
    if (drawn_) {
      std::fprintf(stderr, "\r\033[K");
      std::fflush(stderr);
    }
    drawn_ = false;
  }

 private:
  std::string label_, phase_;
  bool enabled_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point t0_, last_{};
};

}  // namespace swiftbalancer::cli
