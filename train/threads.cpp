#include "train/threads.hpp"

#include <omp.h>

#include <algorithm>
#include <cstdio>

namespace rune::train {

ThreadGovernor::ThreadGovernor(int max_threads, Options options) : options_(options) {
  for (int n = std::max(max_threads, 1);; n /= 2) {
    counts_.push_back(n);
    if (n == 1) break;
  }
  gap_ = until_probe_ = options_.first_probe;
  last_tried_ = counts_.size() > 1 ? counts_.size() - 1 : 0;
}

ThreadGovernor::~ThreadGovernor() {
  if (counts_.size() > 1) omp_set_num_threads(counts_[0]);
}

double ThreadGovernor::median_of(const std::vector<double>& v) const {
  std::vector<double> s = v;
  std::sort(s.begin(), s.end());
  return s.empty() ? 0 : s[s.size() / 2];
}

// The count to probe next: the neighbours of the current one on the ladder, in turns.
std::size_t ThreadGovernor::next_candidate() const {
  std::vector<std::size_t> candidates;
  if (current_ > 0) candidates.push_back(current_ - 1);
  if (current_ + 1 < counts_.size()) candidates.push_back(current_ + 1);
  if (candidates.size() == 1) return candidates[0];
  return candidates[0] == last_tried_ ? candidates[1] : candidates[0];
}

int ThreadGovernor::begin_step() {
  const int n = probing_ ? counts_[probed_] : counts_[current_];
  if (counts_.size() > 1) omp_set_num_threads(n);
  return n;
}

std::string ThreadGovernor::end_step(double seconds, double items) {
  if (counts_.size() == 1 || !(items > 0) || !(seconds > 0)) return "";
  const double per_item = seconds / items;
  const auto k = static_cast<std::size_t>(options_.probe_steps);
  if (probing_) {
    probe_.push_back(per_item);
    if (probe_.size() < k) return "";
    probing_ = false;
    const double theirs = median_of(probe_), ours = median_of(recent_);
    if (theirs < ours * (1 - options_.margin)) {
      const int from = counts_[current_];
      current_ = probed_;
      recent_ = probe_;
      reference_ = theirs;
      gap_ = options_.first_probe;  // the load has changed: look again soon
      until_probe_ = gap_;
      char line[200];
      std::snprintf(line, sizeof line,
                    "threads: %d -> %d (a step took %.3g ms per item on %d, %.3g ms on %d: other processes hold "
                    "cores, or have left them)",
                    from, counts_[current_], 1e3 * ours, from, 1e3 * theirs, counts_[current_]);
      return line;
    }
    reference_ = ours;  // confirmed: probe less often
    gap_ = std::min(gap_ * 2, options_.longest_gap);
    until_probe_ = gap_;
    return "";
  }
  recent_.push_back(per_item);
  if (recent_.size() > k) recent_.erase(recent_.begin());
  if (reference_ == 0 && recent_.size() == k) reference_ = median_of(recent_);
  --until_probe_;
  before_first_ += seconds;
  const bool first_due = !probed_yet_ && before_first_ >= options_.first_probe_seconds;
  const bool slowed = reference_ > 0 && recent_.size() == k && median_of(recent_) > options_.slowdown * reference_;
  if (recent_.size() == k && (until_probe_ <= 0 || first_due || slowed)) {
    probed_yet_ = true;
    probing_ = true;
    probed_ = next_candidate();
    last_tried_ = probed_;
    probe_.clear();
  }
  return "";
}

}  // namespace rune::train
