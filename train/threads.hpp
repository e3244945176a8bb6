// The trainer's OpenMP thread count, fitted to the cores the run actually gets.
//
// OpenMP's parallel loops and the gemm blocks (autograd/blas.cpp) share their work out evenly
// between the threads and wait for the last one. When another process holds one of the cores, the
// thread on it runs in the time slices that process leaves it, and every loop waits for it: on 2
// cores, with one other process spinning, a ViT step on 2 threads ran at 23% of its idle speed,
// and on 1 thread (on the free core) at 53%. So the trainer measures its steps and runs them on
// the thread count that is fastest now: ThreadGovernor.
//
// Every count is tried for a few steps now and then (a probe), and kept when its time per item
// beats the current count's by a margin. Probes start early (after 50 steps, or 20 seconds of
// steps if that comes first: on a 2-core Zen 1 with one core taken, 50 ViT steps took 90 s),
// come further apart while they keep confirming the count (every 50 steps, doubling up to every
// 1,600), and come at once when the steps slow down by a quarter (the load has changed). The counts are the OpenMP
// maximum (OMP_NUM_THREADS) and its halves down to 1.
//
// A step's numbers do not depend on the thread count (tests/test_threads.cpp), so changing it
// changes the speed of a run, never its parameters.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace rune::train {

class ThreadGovernor {
 public:
  struct Options {
    int probe_steps = 4;              // steps a probe runs, and the recent steps it is compared with
    std::int64_t first_probe = 50;    // steps before the first probe
    double first_probe_seconds = 20;  // or seconds of steps, whichever comes first
    std::int64_t longest_gap = 1600;  // the most steps between probes
    double margin = 0.1;              // a count replaces the current one when faster by this fraction
    double slowdown = 1.25;           // recent steps this much slower than the reference: probe now
  };

  // `max_threads`: the most threads to use (1: nothing to adapt, the governor stays out).
  explicit ThreadGovernor(int max_threads, Options options);
  explicit ThreadGovernor(int max_threads) : ThreadGovernor(max_threads, Options{}) {}
  // Puts the OpenMP thread count back to max_threads.
  ~ThreadGovernor();
  ThreadGovernor(const ThreadGovernor&) = delete;
  ThreadGovernor& operator=(const ThreadGovernor&) = delete;

  // Before a step: sets the OpenMP thread count for it (omp_set_num_threads) and returns it.
  int begin_step();
  // After the step: how long it took and how many items it computed. Returns a line for the user
  // when the count has just changed, else "".
  std::string end_step(double seconds, double items);

  int threads() const { return counts_[current_]; }
  bool adapts() const { return counts_.size() > 1; }

 private:
  double median_of(const std::vector<double>& v) const;
  std::size_t next_candidate() const;

  Options options_;
  std::vector<int> counts_;  // max, max/2, ..., 1
  std::size_t current_ = 0;
  std::vector<double> recent_;    // seconds per item of the last steps at the current count
  double reference_ = 0;          // seconds per item of the current count when last chosen or confirmed
  std::int64_t until_probe_ = 0;  // steps left before the next probe
  std::int64_t gap_ = 0;          // steps between probes now
  double before_first_ = 0;       // seconds of steps so far, until the first probe
  bool probed_yet_ = false;
  bool probing_ = false;
  std::size_t probed_ = 0;      // the count under probe
  std::vector<double> probe_;   // its seconds per item
  std::size_t last_tried_ = 0;  // the candidate probed last, to take turns among several
};

}  // namespace rune::train
