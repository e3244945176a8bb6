// rune sweep CONFIG --grid key=v1,v2,... [--grid ...] [--seeds N] [--jobs N] [--out DIR]
//                   [--set key=value ...] [--retry-failed]
// Trains every combination of the grid (train/sweep.hpp), each as a child `rune train`, and after
// each run redraws the sweep's table and plots (report/sweep_report.hpp).
#include "train/sweep.hpp"
#include "cli/command.hpp"
#include "report/sweep_report.hpp"

namespace rune::cli {

Command add_sweep(CLI::App& app) {
  auto request = std::make_shared<train::SweepRequest>();
  CLI::App* c = app.add_subcommand(
      "sweep",
      "Train every combination of config values (a grid search), each in its own run folder, and tabulate them");
  c->add_option("config", request->config, "The config file every run starts from")
      ->required()
      ->check(CLI::ExistingFile);
  c->add_option("--grid", request->grid,
                "A key and the values it takes: --grid model.nhead=2,4,8 (repeatable; values are TOML, as --set's; "
                "the first --grid varies slowest; none: a sweep over seeds alone)");
  c->add_option("--seeds", request->seeds, "Runs per combination, with seeds seed, seed+1, ... (seed: the config's)")
      ->check(CLI::PositiveNumber);
  c->add_option("--jobs", request->jobs,
                "Runs at a time; each gets OMP_NUM_THREADS = cores / jobs unless it is set, and with more than one, "
                "each run writes its output to <sweep>/<run>.log")
      ->check(CLI::PositiveNumber);
  c->add_option("--out", request->out, "The sweep folder (default: <run.dir>/sweep-<config name>)");
  c->add_option("--set", request->sets, "Override a config key for every run: --set train.epochs=2 (repeatable)");
  c->add_flag("--retry-failed", request->retry_failed,
              "Run again the runs that failed (not those that diverged), when the sweep goes on");
  return {c, [request] {
            request->after_run = [](const std::string& folder, const train::SweepSummary& summary) {
              report::write_sweep_report(folder, summary);
            };
            return train::run_sweep(*request);
          }};
}

}  // namespace rune::cli
