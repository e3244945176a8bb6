// rune sweep CONFIG --grid key=v1,v2,... [--grid ...] [--seeds N] [--jobs N] [--out DIR]
//                   [--set key=value ...] [--retry-failed]
// Trains every combination of the grid (train/sweep.hpp), each as a child `rune train`, and after
// each run redraws the sweep's table and plots (report/sweep_report.hpp).
//
// rune sweep --summarize DIR [DIR ...] [--split NAME] [--jobs N] [--out DIR]
// Tabulates finished sweeps again (train::summarize_sweeps): with --split, each done run's
// best.h5 evaluated on that split (a child `rune eval` per run whose eval-<split>.json is missing
// or older than its best.h5, `--jobs` at a time); with several folders, one table and one plot per
// key over them all, with a first column `sweep` naming each folder. --out is the table's folder
// (default: the one DIR; needed with several). CONFIG and --summarize exclude each other.
#include <cstdio>

#include "cli/command.hpp"
#include "report/sweep_report.hpp"
#include "train/sweep.hpp"

namespace rune::cli {

Command add_sweep(CLI::App& app) {
  auto request = std::make_shared<train::SweepRequest>();
  auto summarize = std::make_shared<train::SummarizeRequest>();
  CLI::App* c = app.add_subcommand(
      "sweep",
      "Train every combination of config values (a grid search), each in its own run folder, and tabulate them");
  c->add_option("config", request->config, "The config file every run starts from (not with --summarize)")
      ->check(CLI::ExistingFile);
  c->add_option("--grid", request->grid,
                "A key and the values it takes: --grid model.nhead=2,4,8 (repeatable; values are TOML, as --set's; "
                "the first --grid varies slowest; none: a sweep over seeds alone)");
  c->add_option("--seeds", request->seeds, "Runs per combination, with seeds seed, seed+1, ... (seed: the config's)")
      ->check(CLI::PositiveNumber);
  c->add_option("--jobs", request->jobs,
                "Runs at a time; each gets OMP_NUM_THREADS = cores / jobs unless it is set, and with more than one, "
                "each run writes its output to <sweep>/<run>.log. With --summarize: evaluations at a time (each "
                "writes to <sweep>/<run>.eval-<split>.log)")
      ->check(CLI::PositiveNumber);
  c->add_option("--out", request->out,
                "The sweep folder (default: <run.dir>/sweep-<config name>); with --summarize, the folder for the "
                "table and plots (default: the one sweep folder)");
  c->add_option("--set", request->sets, "Override a config key for every run: --set train.epochs=2 (repeatable)");
  c->add_flag("--retry-failed", request->retry_failed,
              "Run again the runs that failed (not those that diverged), when the sweep goes on");
  c->add_option("--summarize", summarize->folders,
                "Tabulate finished sweep folders instead of running one: one folder's table again (with --split), "
                "or several in one table with a first column `sweep` (their grids must have the same keys)")
      ->expected(1, -1)
      ->check(CLI::ExistingDirectory);
  c->add_option("--split", summarize->split,
                "With --summarize: each done run's value is its best.h5 evaluated on this split (val, test, ...; "
                "rune eval runs where <run>/eval-<split>.json is missing or older than best.h5); default: the best "
                "validation values");
  return {c, [c, request, summarize] {
            const bool summarizing = c->count("--summarize") > 0;
            const std::string which =
                "sweep: give a CONFIG (to run a sweep) or --summarize DIR ... (to tabulate finished ones)";
            if (summarizing && !request->config.empty())
              throw std::invalid_argument(which + ", not both: " + request->config + " and --summarize");
            if (!summarizing && request->config.empty()) throw std::invalid_argument(which);
            if (summarizing) {
              for (const char* flag : {"--grid", "--seeds", "--set", "--retry-failed"})
                if (c->count(flag))
                  throw std::invalid_argument(std::string(flag) + " is for running a sweep, not for --summarize");
              summarize->jobs = request->jobs;
              summarize->out = request->out;
              summarize->write = [](const std::string& folder, const train::SweepSummary& summary) {
                for (const std::string& path : report::write_sweep_report(folder, summary))
                  std::printf("wrote %s\n", path.c_str());
              };
              return train::summarize_sweeps(*summarize);
            }
            if (c->count("--split"))
              throw std::invalid_argument("--split is for --summarize (a sweep's runs are judged on val)");
            request->after_run = [](const std::string& folder, const train::SweepSummary& summary) {
              report::write_sweep_report(folder, summary);
            };
            return train::run_sweep(*request);
          }};
}

}  // namespace rune::cli
