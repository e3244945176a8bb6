// A run's training curves from its metrics log: curves.png in the run folder.
#pragma once

#include <string>

namespace rune::report {

// Reads <folder>/metrics.jsonl (train/metrics_log.hpp) and draws <folder>/curves.png: the
// training loss per step and the validation loss on the left, the other validation metrics on the
// right. Returns the PNG's path.
std::string draw_run_curves(const std::string& folder, const std::string& title);

}  // namespace rune::report
