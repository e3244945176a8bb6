#include <cstdio>

#include "cli/command.hpp"
#include "train/config.hpp"
#include "train/trainer.hpp"

namespace rune::cli {

std::unique_ptr<LoadedTask> load_task(const std::string& path, const std::vector<std::string>& sets, bool load_data) {
  auto loaded = std::make_unique<LoadedTask>();
  loaded->checkpoint = train::read_checkpoint(path);
  train::Config config = train::Config::parse(loaded->checkpoint.config, path + " (its config)");
  for (const std::string& s : sets) config.set(s);
  const std::uint64_t seed = train::read_seed(config);
  loaded->init.manual_seed(seed);
  loaded->dropout.manual_seed(seed);
  train::TaskContext context{seed, &loaded->init, &loaded->dropout};
  context.checkpoint = &loaded->checkpoint;
  context.load_data = load_data;
  try {
    loaded->task = train::make_task(config, context);
  } catch (const std::runtime_error& e) {
    // what the task finds wrong with the checkpoint names it
    const std::string what = e.what();
    if (what.find(path) != std::string::npos) throw;
    throw std::runtime_error("checkpoint " + path + ": " + what);
  }
  config.check_overrides_used();  // a mistyped --set key is an error, not ignored
  for (const std::string& note : loaded->task->load_parameters(loaded->checkpoint, path))
    std::fprintf(stderr, "%s: %s\n", path.c_str(), note.c_str());
  return loaded;
}

void add_checkpoint_argument(CLI::App& command, std::string& path) {
  command.add_option("checkpoint", path, "The checkpoint (.h5)")->required()->check(CLI::ExistingFile);
}

}  // namespace rune::cli
