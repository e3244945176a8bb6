// The one progress line of long work (training, head analysis, pruning) on stderr: rewritten in
// place on a terminal at most five times a second; elsewhere (a log file, CI) a line of its own
// when forced, or every `log_every_s` seconds.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace rune::train {

class ProgressLine {
 public:
  using Clock = std::chrono::steady_clock;
  // enabled = false prints nothing at all; live = false never rewrites in place (a line per show).
  explicit ProgressLine(bool enabled = true, double log_every_s = 1e300, bool live = true);
  // The status `text` (no newline); shown when due or `force`d.
  void show(const std::string& text, bool force = false);
  // A line that stays (a result, a warning), clearing the status line first.
  void line(const std::string& text);
  bool live() const { return live_; }

  // "<what> 3/10, 0:12 spent, 0:28 left": the time left from the mean time per unit so far.
  static std::string status(const std::string& what, std::int64_t done, std::int64_t total, Clock::time_point start);

 private:
  bool enabled_, live_;
  double log_every_s_;
  Clock::time_point last_{};
};

}  // namespace rune::train
