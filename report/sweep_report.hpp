// A sweep's results (train/sweep.hpp) as files a person reads, in the sweep folder:
//   sweep.md         a Markdown table, one row per combination: the varied keys' values, the seeds
//                    done, failed runs, the primary metric's mean, sample standard deviation, min
//                    and max over the seeds, and the mean time of a run; then the best combination
//   sweep.csv        the same table for a program (numbers in full, time in seconds)
//   sweep-<key>.png  per varied key: the metric's mean (error bars: the standard deviation) and
//                    each seed's value against the key's values, one line per combination of the
//                    other keys
// The metric of a run is its best validation value of the task's primary metric (what its best.h5
// holds: "best val_accuracy" in the column heads and plots, val_accuracy_mean in the CSV), or with
// the summary's split, its best.h5's value on that split ("test accuracy", test_accuracy_mean).
// A summary of several sweeps (train::merge_summaries) has a first column `sweep`; it gets no plot
// of its own unless it is the only axis, and the other keys' plots draw a line per sweep.
#pragma once

#include <string>
#include <vector>

#include "report/csv.hpp"
#include "train/sweep.hpp"

namespace rune::report {

std::string sweep_markdown(const train::SweepSummary& summary);
Csv sweep_csv(const train::SweepSummary& summary);

// Where a key's values go on a plot's x axis: every value a number, at the number, or at its
// log10 when all are positive and the largest is at least 10 times the smallest (learning rates,
// widths); otherwise categories at 0, 1, 2 ... in the grid's order. `log` says which was chosen.
std::vector<double> axis_positions(const std::vector<std::string>& values, bool* log = nullptr);

// Writes the three kinds of file above into `folder`, all together or none (train::FileTransaction);
// returns their paths.
std::vector<std::string> write_sweep_report(const std::string& folder, const train::SweepSummary& summary);

}  // namespace rune::report
