// What every Runestone benchmark shares: the timing rule and the output format bench/run.sh reads.
//
// A case runs 3 times as warm-up (page faults, thread start, caches), then repeatedly for about
// `budget` seconds (at least 5, at most 500 runs), each run timed alone with steady_clock; the
// median is reported. Output: one tab-separated line per case: name, seconds, rate, unit.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

namespace rune::bench {

inline double median_seconds(const std::function<void()>& fn, double budget = 0.4) {
  using clock = std::chrono::steady_clock;
  for (int i = 0; i < 3; ++i) fn();
  std::vector<double> times;
  const auto start = clock::now();
  while (times.size() < 5 ||
         (std::chrono::duration<double>(clock::now() - start).count() < budget && times.size() < 500)) {
    const auto t0 = clock::now();
    fn();
    times.push_back(std::chrono::duration<double>(clock::now() - t0).count());
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

inline void report(const std::string& name, double seconds, double rate, const char* unit) {
  std::printf("%s\t%.6e\t%.3f\t%s\n", name.c_str(), seconds, rate, unit);
  std::fflush(stdout);
}

}  // namespace rune::bench
