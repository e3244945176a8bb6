// rune train CONFIG [--set key=value ...] [--no-progress]
// rune train --resume CKPT [--set key=value ...] [--no-progress]
#include "cli/command.hpp"
#include "report/curves.hpp"
#include "train/format.hpp"
#include "train/trainer.hpp"

namespace rune::cli {

Command add_train(CLI::App& app) {
  auto request = std::make_shared<train::TrainRequest>();
  auto no_progress = std::make_shared<bool>(false);
  CLI::App* c = app.add_subcommand("train", "Train a model from a TOML config into a new run folder");
  c->add_option("config", request->config, "The config file (examples/*/*.toml)")->check(CLI::ExistingFile);
  c->add_option("--set", request->sets,
                "Override a config key: --set model.d_model=256 (repeatable); when resuming, only " +
                    train::join(train::kResumeKeys, ", "));
  c->add_option("--resume", request->resume,
                "Continue a run from one of its checkpoints (<run>/checkpoints/last.h5), with the "
                "config it started with")
      ->check(CLI::ExistingFile);
  c->add_flag("--no-progress", *no_progress, "A log line every train.log_every steps instead of the live line");
  return {c, [request, no_progress] {
            if (request->config.empty() && request->resume.empty())
              throw std::invalid_argument("train needs a config file, or --resume and a checkpoint");
            request->progress = !*no_progress;
            // the curves are redrawn from the metrics log after every validation
            request->after_validation = [](const std::string& folder, const std::string& name) {
              report::draw_run_curves(folder, name);
            };
            return train::train(*request);
          }};
}

}  // namespace rune::cli
