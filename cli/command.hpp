// The rune subcommands: each file cli/<name>.cpp adds its subcommand to the command line (its
// flags, parsed by CLI11) and returns what runs it. main.cpp lists them.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "autograd/random.hpp"
#include "train/checkpoint.hpp"
#include "train/task.hpp"

namespace rune::cli {

// A subcommand: its parser, and what runs it once parsed (the exit code).
struct Command {
  CLI::App* app;
  std::function<int()> run;
};

Command add_train(CLI::App& app);
Command add_eval(CLI::App& app);
Command add_info(CLI::App& app);
Command add_translate(CLI::App& app);
Command add_generate(CLI::App& app);
Command add_attention(CLI::App& app);
Command add_heads(CLI::App& app);
Command add_align(CLI::App& app);
Command add_tasks(CLI::App& app);
Command add_config(CLI::App& app);
Command add_score(CLI::App& app);
Command add_sweep(CLI::App& app);
Command add_report(CLI::App& app);
Command add_export(CLI::App& app);

// A checkpoint with the task rebuilt from its own config (plus `sets`) and its parameters loaded;
// the task takes its vocabularies and the like from the checkpoint, and reads its data only when
// load_data (rune eval, rune heads). Never moved once made: the task's model keeps a pointer to
// `dropout`, and the task to `checkpoint`.
struct LoadedTask {
  train::Checkpoint checkpoint;
  Generator init, dropout;
  std::unique_ptr<train::Task> task;
};
std::unique_ptr<LoadedTask> load_task(const std::string& path, const std::vector<std::string>& sets = {},
                                      bool load_data = true);

// The subcommand's first argument: a checkpoint file (.h5) that exists, into `path`.
void add_checkpoint_argument(CLI::App& command, std::string& path);

}  // namespace rune::cli
