#include "train/progress.hpp"

#include <unistd.h>

#include <cstdio>

#include "train/files.hpp"

namespace rune::train {

ProgressLine::ProgressLine(bool enabled, double log_every_s, bool live)
    : enabled_(enabled), live_(enabled && live && ::isatty(2)), log_every_s_(log_every_s) {}

void ProgressLine::show(const std::string& text, bool force) {
  if (!enabled_) return;
  const auto now = Clock::now();
  const double since = std::chrono::duration<double>(now - last_).count();
  if (!force && since < (live_ ? 0.2 : log_every_s_)) return;
  last_ = now;
  std::fprintf(stderr, "%s%s%s", live_ ? "\r" : "", text.c_str(), live_ ? "\033[K" : "\n");
  std::fflush(stderr);
}

void ProgressLine::line(const std::string& text) {
  if (!enabled_) return;
  std::fprintf(stderr, "%s%s\n", live_ ? "\r\033[K" : "", text.c_str());
  std::fflush(stderr);
}

std::string ProgressLine::status(const std::string& what, std::int64_t done, std::int64_t total,
                                 Clock::time_point start) {
  const double spent = std::chrono::duration<double>(Clock::now() - start).count();
  const double left = done > 0 ? spent * static_cast<double>(total - done) / static_cast<double>(done) : 0.0;
  return what + " " + std::to_string(done) + "/" + std::to_string(total) + ", " + duration(spent) + " spent, " +
         duration(left) + " left";
}

}  // namespace rune::train
