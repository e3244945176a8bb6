// Learning-rate schedules: each is a function of the step (0 for the first update) giving the
// factor applied to every group's base_lr (Optimizer::set_lr_factor), like torch's LambdaLR.
//
//   constant                 1, after a linear warmup of (s + 1) / warmup if warmup_steps > 0
//   warmup_cosine            (s + 1) / warmup while s < warmup, then
//                            min_factor + (1 - min_factor) (1 + cos(pi p)) / 2 with
//                            p = (s - warmup + 1) / (total - warmup) clamped to [0, 1]
//   warmup_inverse_sqrt      min((s + 1) / warmup, sqrt(warmup / (s + 1))): with base_lr =
//                            d_model^-0.5 warmup^-0.5 this is Vaswani et al.'s
//                            d_model^-0.5 min(n^-0.5, n warmup^-1.5) at n = s + 1
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace rune::optim {

struct Schedule {
  std::string name = "constant";  // one of schedules() below
  std::int64_t warmup_steps = 0;
  std::int64_t total_steps = 0;  // warmup_cosine only: where the decay ends
  double min_factor = 0.0;       // warmup_cosine only: the factor it decays to

  double factor(std::int64_t step) const;
  void validate() const;  // throws std::invalid_argument naming the impossible value or an unknown name
};

// The schedules by name, as a config names them (train.schedule). Adding one: its factor function
// (and what it requires of the settings) and one line in the list in schedule.cpp.
struct ScheduleInfo {
  std::string name, description;
  std::function<double(const Schedule&, std::int64_t step)> factor;
  std::function<void(const Schedule&)> validate;  // throws std::invalid_argument
};
const std::vector<ScheduleInfo>& schedules();
std::vector<std::string> schedule_names();

// The DropHead rate by step (Zhou et al. 2020). constant: p throughout. scheduled: their
// V shape, p falling linearly to 0 over the first `warmup_steps` (while the heads are still
// finding their roles nothing is dropped by the end of it), then rising linearly back to p
// at total_steps.
struct DropHeadSchedule {
  double p = 0.0;
  bool scheduled = false;
  std::int64_t warmup_steps = 0;
  std::int64_t total_steps = 0;

  double rate(std::int64_t step) const;
  void validate() const;  // throws std::invalid_argument naming the impossible value
};

}  // namespace rune::optim
