// rune train CONFIG [--set key=value ...] [--resume CKPT] [--no-progress]
#include "cli/command.hpp"
#include "report/curves.hpp"
#include "train/trainer.hpp"

namespace rune::cli {

Command add_train(CLI::App& app) {
  auto request = std::make_shared<train::TrainRequest>();
  auto no_progress = std::make_shared<bool>(false);
  CLI::App* c = app.add_subcommand("train", "Train a model from a TOML config into a new run folder");
  c->add_option("config", request->config, "The config file (examples/*/*.toml)")->required()->check(CLI::ExistingFile);
  c->add_option("--set", request->sets, "Override a config key: --set model.d_model=256 (repeatable)");
  c->add_option("--resume", request->resume, "Continue from a checkpoint of a run folder (<run>/checkpoints/last.h5)")
      ->check(CLI::ExistingFile);
  c->add_flag("--no-progress", *no_progress, "A log line every train.log_every steps instead of the live line");
  return {c, [request, no_progress] {
            request->progress = !*no_progress;
            // the curves are redrawn from the metrics log after every validation
            request->after_validation = [](const std::string& folder, const std::string& name) {
              report::draw_run_curves(folder, name);
            };
            return train::train(*request);
          }};
}

}  // namespace rune::cli
