// The task registry: task.name in a config picks one of these.
#include "cli/task.hpp"
#include "examples/seq2seq/reverse_task.hpp"
#include "examples/translation/translation_task.hpp"
#include "examples/vit/vit_task.hpp"

namespace rune::cli {

std::vector<std::string> task_names() { return {"translation", "vit", "reverse"}; }

std::vector<std::string> Task::load_parameters(const nn::Checkpoint& c, const std::string& path) {
  nn::load_parameters(model(), c, path);
  return {};
}

std::vector<std::string> Task::write_reports(const std::string&, const std::string&) { return {}; }

void Task::write_predictions(const std::string&) const {
  throw std::runtime_error("this task writes no per-example predictions");
}

std::int64_t Task::prepare_analysis(const std::string&, std::int64_t, std::int64_t) {
  throw std::runtime_error("this task has no head analysis");
}

AnalysisBatch Task::analysis_batch(std::int64_t) { throw std::runtime_error("this task has no head analysis"); }

std::unique_ptr<Task> make_task(Config& config, const TaskContext& context) {
  const std::string name = config.string("task.name", "reverse", task_names());
  if (name == "translation") return std::make_unique<examples::TranslationTask>(config, context);
  if (name == "vit") return std::make_unique<examples::ViTTask>(config, context);
  if (name == "reverse") return std::make_unique<examples::ReverseTask>(config, context);
  config.fail("task.name", "'" + name + "' has no implementation");  // string() refused unknown names already
}

}  // namespace rune::cli
