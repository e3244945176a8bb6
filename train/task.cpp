// The task registry: task.name in a config picks one of the tasks registered by examples/*/.
#include "train/task.hpp"

#include <algorithm>

namespace rune::train {

namespace {

// A function-local static, so registrations from other translation units' static initialisers
// find it constructed whatever the order.
std::vector<TaskInfo>& registry() {
  static std::vector<TaskInfo> tasks;
  return tasks;
}

}  // namespace

std::vector<std::string> Task::load_parameters(const Checkpoint& c, const std::string& path) {
  train::load_parameters(model(), c, path);
  return {};
}

bool register_task(TaskInfo info) {
  if (info.name.empty() || !info.make) throw std::logic_error("register_task: a task needs a name and a factory");
  for (const TaskInfo& t : registry())
    if (t.name == info.name) throw std::logic_error("register_task: two tasks are named '" + info.name + "'");
  registry().push_back(std::move(info));
  return true;
}

std::vector<TaskInfo> registered_tasks() {
  std::vector<TaskInfo> tasks = registry();
  std::sort(tasks.begin(), tasks.end(), [](const TaskInfo& a, const TaskInfo& b) { return a.name < b.name; });
  return tasks;
}

std::vector<std::string> task_names() {
  std::vector<std::string> names;
  for (const TaskInfo& t : registered_tasks()) names.push_back(t.name);
  return names;
}

std::string tasks_with(const std::string& capability) {
  std::string names;
  for (const TaskInfo& t : registered_tasks())
    if (std::find(t.capabilities.begin(), t.capabilities.end(), capability) != t.capabilities.end())
      names += (names.empty() ? "" : ", ") + t.name;
  return names.empty() ? "none" : names;
}

std::unique_ptr<Task> make_task(Config& config, const TaskContext& context) {
  const std::vector<std::string> names = task_names();
  if (names.empty()) throw std::logic_error("make_task: no task is registered (is examples/ linked in?)");
  const std::string fallback =
      std::find(names.begin(), names.end(), "reverse") != names.end() ? "reverse" : names.front();
  const std::string name = config.string("task.name", fallback, names, "the task to train (rune tasks describes each)");
  for (const TaskInfo& t : registry())
    if (t.name == name) {
      std::unique_ptr<Task> task = t.make(config, context);
      task->name_ = name;
      return task;
    }
  config.fail("task.name", "'" + name + "' is not registered");  // string() refused unknown names already
}

}  // namespace rune::train
