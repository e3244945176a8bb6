#include "optim/schedule.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace rune::optim {

std::string schedule_name(ScheduleKind k) {
  switch (k) {
    case ScheduleKind::constant: return "constant";
    case ScheduleKind::warmup_cosine: return "warmup_cosine";
    case ScheduleKind::warmup_inverse_sqrt: return "warmup_inverse_sqrt";
  }
  return "constant";
}

ScheduleKind schedule_from_name(const std::string& name) {
  for (ScheduleKind k : {ScheduleKind::constant, ScheduleKind::warmup_cosine, ScheduleKind::warmup_inverse_sqrt})
    if (schedule_name(k) == name) return k;
  throw std::invalid_argument("schedule '" + name + "' is not one of constant, warmup_cosine, warmup_inverse_sqrt");
}

void Schedule::validate() const {
  if (warmup_steps < 0) throw std::invalid_argument("schedule: warmup_steps must not be negative");
  if (kind == ScheduleKind::warmup_inverse_sqrt && warmup_steps < 1)
    throw std::invalid_argument("schedule: warmup_inverse_sqrt needs warmup_steps >= 1");
  if (kind == ScheduleKind::warmup_cosine && total_steps <= warmup_steps)
    throw std::invalid_argument("schedule: warmup_cosine needs total_steps (" + std::to_string(total_steps) +
                                ") above warmup_steps (" + std::to_string(warmup_steps) + ")");
  if (!(min_factor >= 0 && min_factor <= 1)) throw std::invalid_argument("schedule: min_factor must be in [0, 1]");
}

double Schedule::factor(std::int64_t step) const {
  const double s = static_cast<double>(step) + 1;  // updates done once this step is taken
  const double w = static_cast<double>(warmup_steps);
  switch (kind) {
    case ScheduleKind::constant:
      return step < warmup_steps ? s / w : 1.0;
    case ScheduleKind::warmup_cosine: {
      if (step < warmup_steps) return s / w;
      const double p = std::clamp((s - w) / static_cast<double>(total_steps - warmup_steps), 0.0, 1.0);
      return min_factor + (1 - min_factor) * 0.5 * (1 + std::cos(M_PI * p));
    }
    case ScheduleKind::warmup_inverse_sqrt:
      return std::min(s / w, std::sqrt(w / s));
  }
  return 1.0;
}

void DropHeadSchedule::validate() const {
  if (!(p >= 0.0 && p < 1.0)) throw std::invalid_argument("drophead: the rate must be in [0, 1), got " + std::to_string(p));
  if (scheduled && (warmup_steps < 0 || total_steps <= warmup_steps))
    throw std::invalid_argument("drophead: the scheduled rate needs 0 <= warmup_steps (" + std::to_string(warmup_steps) +
                                ") < total_steps (" + std::to_string(total_steps) + ")");
}

double DropHeadSchedule::rate(std::int64_t step) const {
  if (!scheduled) return p;
  const double s = static_cast<double>(step);
  if (step < warmup_steps) return p * (1.0 - s / static_cast<double>(warmup_steps));
  const double rise = (s - static_cast<double>(warmup_steps)) / static_cast<double>(total_steps - warmup_steps);
  return p * std::clamp(rise, 0.0, 1.0);
}

}  // namespace rune::optim
