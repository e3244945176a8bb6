#include "optim/schedule.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace rune::optim {

namespace {

// s = step + 1: the updates done once this step is taken; w = warmup_steps.
double linear_warmup(const Schedule& sc, std::int64_t step) {
  return static_cast<double>(step + 1) / static_cast<double>(sc.warmup_steps);
}

double constant(const Schedule& sc, std::int64_t step) {
  return step < sc.warmup_steps ? linear_warmup(sc, step) : 1.0;
}

double warmup_cosine(const Schedule& sc, std::int64_t step) {
  if (step < sc.warmup_steps) return linear_warmup(sc, step);
  const double s = static_cast<double>(step) + 1, w = static_cast<double>(sc.warmup_steps);
  const double p = std::clamp((s - w) / static_cast<double>(sc.total_steps - sc.warmup_steps), 0.0, 1.0);
  return sc.min_factor + (1 - sc.min_factor) * 0.5 * (1 + std::cos(M_PI * p));
}

double warmup_inverse_sqrt(const Schedule& sc, std::int64_t step) {
  const double s = static_cast<double>(step) + 1, w = static_cast<double>(sc.warmup_steps);
  return std::min(s / w, std::sqrt(w / s));
}

void no_requirement(const Schedule&) {}

void needs_decay_steps(const Schedule& sc) {
  if (sc.total_steps <= sc.warmup_steps)
    throw std::invalid_argument("schedule: warmup_cosine needs total_steps (" + std::to_string(sc.total_steps) +
                                ") above warmup_steps (" + std::to_string(sc.warmup_steps) + ")");
}

void needs_warmup(const Schedule& sc) {
  if (sc.warmup_steps < 1) throw std::invalid_argument("schedule: warmup_inverse_sqrt needs warmup_steps >= 1");
}

const ScheduleInfo& find(const std::string& name) {
  for (const ScheduleInfo& s : schedules())
    if (s.name == name) return s;
  std::string known;
  for (const std::string& n : schedule_names()) known += (known.empty() ? "" : ", ") + n;
  throw std::invalid_argument("schedule '" + name + "' is not one of " + known);
}

}  // namespace

const std::vector<ScheduleInfo>& schedules() {
  static const std::vector<ScheduleInfo> list{
      {"constant", "1, after a linear warmup if warmup_steps > 0", constant, no_requirement},
      {"warmup_cosine", "linear warmup, then a cosine decay to min_lr_factor at the run's end", warmup_cosine,
       needs_decay_steps},
      {"warmup_inverse_sqrt", "linear warmup, then 1 / sqrt(step) (Vaswani et al.)", warmup_inverse_sqrt, needs_warmup},
  };
  return list;
}

std::vector<std::string> schedule_names() {
  std::vector<std::string> names;
  for (const ScheduleInfo& s : schedules()) names.push_back(s.name);
  return names;
}

void Schedule::validate() const {
  const ScheduleInfo& info = find(name);
  if (warmup_steps < 0) throw std::invalid_argument("schedule: warmup_steps must not be negative");
  if (!(min_factor >= 0 && min_factor <= 1)) throw std::invalid_argument("schedule: min_factor must be in [0, 1]");
  info.validate(*this);
}

double Schedule::factor(std::int64_t step) const { return find(name).factor(*this, step); }

void DropHeadSchedule::validate() const {
  if (!(p >= 0.0 && p < 1.0))
    throw std::invalid_argument("drophead: the rate must be in [0, 1), got " + std::to_string(p));
  if (scheduled && (warmup_steps < 0 || total_steps <= warmup_steps))
    throw std::invalid_argument("drophead: the scheduled rate needs 0 <= warmup_steps (" +
                                std::to_string(warmup_steps) + ") < total_steps (" + std::to_string(total_steps) + ")");
}

double DropHeadSchedule::rate(std::int64_t step) const {
  if (!scheduled) return p;
  const double s = static_cast<double>(step);
  if (step < warmup_steps) return p * (1.0 - s / static_cast<double>(warmup_steps));
  const double rise = (s - static_cast<double>(warmup_steps)) / static_cast<double>(total_steps - warmup_steps);
  return p * std::clamp(rise, 0.0, 1.0);
}

}  // namespace rune::optim
