// What every Runestone benchmark shares: the timing rule, the machine's sgemm peak and the output
// format bench/run.sh reads.
//
// A case runs 3 times as warm-up (page faults, thread start, caches), then repeatedly for about
// `budget` seconds (at least 5, at most 500 runs), each run timed alone with steady_clock; the
// median is reported. Output: one tab-separated line per case: name, seconds, rate, unit, the
// model FLOPs of one run (0: not a compute case) and the process's peak resident memory in MiB so
// far (0: not reported for this case). A training step runs first in its program, so that the
// peak is its own.
#pragma once

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "autograd/blas.hpp"

namespace rune::bench {

// BENCH_SECONDS=s in the environment sets every case's budget (for a profile: `BENCH_SECONDS=10
// perf record -g build/bench_vit` spends its samples on the steady state, not on the warm-up).
inline double median_seconds(const std::function<void()>& fn, double budget = 0.4) {
  using clock = std::chrono::steady_clock;
  if (const char* s = std::getenv("BENCH_SECONDS")) budget = std::atof(s);
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

// The process's peak resident set so far, in MiB (getrusage's ru_maxrss is in KiB on Linux).
inline double peak_rss_mib() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;
}

struct Extra {
  double flops = 0;  // model FLOPs of one run: bench/run.sh divides by the sgemm peak
  bool rss = false;  // report the peak resident memory
};

inline void report(const std::string& name, double seconds, double rate, const char* unit, Extra extra = {}) {
  std::printf("%s\t%.6e\t%.3f\t%s\t%.6e\t%.1f\n", name.c_str(), seconds, rate, unit, extra.flops,
              extra.rss ? peak_rss_mib() : 0.0);
  std::fflush(stdout);
}

// The rate of a 1024^3 sgemm through the BLAS every op uses, in GFLOP/s: the machine's practical
// peak, which bench/run.sh takes as 100% (the largest over its rounds). Printed as a comment line,
// "# sgemm peak<TAB>GFLOP/s", before the cases, so that it is measured in the same run as they are.
inline void print_sgemm_peak() {
  constexpr int n = 1024;
  std::vector<float> a(n * n, 0.5f), b(n * n, 0.25f), c(n * n);
  const double s = median_seconds(
      [&] { blas::gemm(false, false, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n); }, 0.3);
  std::printf("# sgemm peak\t%.2f\n", 2.0 * n * n * n / s * 1e-9);
  std::fflush(stdout);
}

}  // namespace rune::bench
