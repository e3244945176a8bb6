// Hyperparameter sweeps (`rune sweep`): the grid of --grid flags and its runs in a fixed order,
// each run's folder name, the sweep's manifest (sweep.json), a run's result read from its metrics
// log, the summary table's arithmetic, and run_sweep, which trains every run as a child
// `rune train` process, so that a crash or a NaN in one run never ends the others; and
// summarize_sweeps, which tabulates finished sweeps on another split (each run's best.h5
// evaluated by a child `rune eval`) or several sweeps in one table.
//
//   rune sweep tiny.toml --grid model.nhead=2,4 --grid train.lr=1e-3,3e-3 --seeds 2
//   rune sweep --summarize runs/vit runs/cnn --split test --out runs/vit-vs-cnn
//
// Order: the cartesian product of the axes as itertools.product gives it (the first --grid varies
// slowest, the last fastest), and within a combination the seeds (the config's seed, seed+1, ...).
// Each run is trained into <sweep folder>/<name>, its name the combination and seed:
// "model.nhead=2,train.lr=1e-3,seed=0". A combination's result is the mean, sample standard
// deviation, min and max over its seeds of each run's best validation value of the task's primary
// metric (the value best.h5 holds).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "train/metrics_log.hpp"

namespace rune::train {

// One --grid flag: a config key and the values it takes, as TOML text ("2", "1e-3", "gelu").
struct GridAxis {
  std::string key;
  std::vector<std::string> values;
};

// "model.nhead=2,4,8" into its key and values. Values are split at commas outside brackets and
// quotes, so "model.sizes=[1,2],[3,4]" is two arrays. std::invalid_argument names the flag for a
// missing '=', an empty key or value, and a value given twice.
GridAxis parse_grid(const std::string& spec);

// Refuses a key given twice, and run.dir / run.name (the sweep names each run's folder).
void check_grid(const std::vector<GridAxis>& grid);

// Every combination of the axes' values (one value per axis, in the axes' order), the first axis
// varying slowest. No axis: one empty combination (a sweep over seeds alone).
std::vector<std::vector<std::string>> combinations(const std::vector<GridAxis>& grid);

// The seeds of `count` runs of a combination: base, base + 1, ...
std::vector<std::uint64_t> sweep_seeds(std::uint64_t base, int count);

// A run's folder name: "key=value" for each axis then "seed=N", joined by commas; a TOML string's
// quotes are dropped and in keys and values every character outside [A-Za-z0-9._+-] becomes '_'
// (a value's commas too, so that the name reads back into its combination). with_seed false
// leaves the seed out (the grid sweeps `seed` itself).
std::string run_name(const std::vector<GridAxis>& grid, const std::vector<std::string>& values, std::uint64_t seed,
                     bool with_seed = true);

struct SweepRun {
  std::size_t combination = 0;      // index into combinations(grid)
  std::vector<std::string> values;  // one per axis
  std::uint64_t seed = 0;
  std::string name;  // its folder under the sweep folder
};

// The runs of the sweep in order (combinations, then seeds within each); with `seed` among the
// axes, one run per combination, its seed the axis's value. std::invalid_argument when two runs'
// names come out the same (values that differ only in characters the name replaces).
std::vector<SweepRun> expand_runs(const std::vector<GridAxis>& grid, const std::vector<std::uint64_t>& seeds);

// ------------------------------------------------------------------------- the manifest

// A run's state in the manifest: pending (not started), running (started by a sweep that has not
// seen it end: that sweep was killed), interrupted (stopped by Ctrl-C, resumable), done (exit 0),
// diverged (exit 3: a non-finite loss or metric), failed (any other exit or a signal).
struct RunState {
  std::string name;
  std::string status = "pending";
  int exit_code = 0;  // of failed; a child killed by signal N is 128 + N
};

// sweep.json: what the sweep is (to refuse rerunning a different one in its folder) and the state
// of each of its runs, in run order.
struct SweepManifest {
  std::string config;         // the config file as given
  std::string config_sha256;  // of its bytes: an edited config is another sweep
  std::vector<std::string> sets;
  std::vector<GridAxis> grid;
  std::vector<std::uint64_t> seeds;
  std::string metric;  // the task's primary metric, without val_
  bool higher_is_better = true;
  std::vector<RunState> runs;
};

std::string manifest_json(const SweepManifest& m);
// std::runtime_error naming `origin` for text that is not a manifest.
SweepManifest parse_manifest(const std::string& text, const std::string& origin);
// What makes `existing` (read from a sweep folder) another sweep than `wanted`: the config file's
// content, the fixed --set overrides, the grid or the seeds, said in one sentence; "" when it is
// the same sweep. Run states are not compared.
std::string manifest_difference(const SweepManifest& existing, const SweepManifest& wanted);

// ------------------------------------------------------------------------- results

// What a run's metrics log says: its best validation value of the primary metric, and its time.
struct RunResult {
  bool has_metric = false;  // at least one finite val_<metric>
  double best = 0;          // the best finite val_<metric> (max or min)
  std::int64_t best_step = 0;
  // Seconds of training, validation included: elapsed_s of the last training record, summed over
  // the run's sessions (elapsed_s starts again from 0 when a run resumes).
  double time_s = 0;
};
RunResult run_result(const std::vector<MetricsRecord>& log, const std::string& metric, bool higher_is_better);

// A run as the summary sees it: its combination and seed, its status and, when its log could be
// read, its result.
struct RunOutcome {
  std::size_t combination = 0;
  std::uint64_t seed = 0;
  std::string status;  // as RunState::status
  RunResult result;
};

// One row of the table: a combination over its seeds. Only done runs count in the statistics; a
// diverged or failed run counts in `failed`, a run not finished (pending, interrupted) in `pending`.
struct SweepRow {
  std::vector<std::string> values;  // one per axis
  int runs = 0;                     // seeds asked for
  int done = 0, failed = 0, pending = 0;
  std::vector<std::pair<std::uint64_t, double>> metric;  // (seed, best value) of each done run
  // over `metric`'s values: NaN with none; std is the sample standard deviation (n - 1), NaN
  // with fewer than two
  double mean = 0, std = 0, min = 0, max = 0;
  double time_s = 0;  // mean over the done runs; NaN with none
};

// The rows, one per combination in order. std::invalid_argument for an outcome of a combination
// out of range.
std::vector<SweepRow> summarise(const std::vector<std::vector<std::string>>& combinations,
                                const std::vector<RunOutcome>& outcomes);

// What the report writers draw from (report/sweep_report.hpp).
struct SweepSummary {
  std::string config;  // of several sweeps: their configs, each once, joined by ", "
  std::string metric;  // the task's primary metric, without val_
  bool higher_is_better = true;
  // With several sources the first axis is `sweep`, its values the folders' names (sweep_name),
  // and each row's first value its sweep's name.
  std::vector<GridAxis> grid;
  std::vector<SweepRow> rows;
  // "": a run's value is its best validation value; else the split its best.h5 was evaluated on
  std::string split;
  std::vector<std::string> sources;  // the sweep folders tabulated
};

// ------------------------------------------------------------------------- reading a sweep folder

// A sweep folder as its manifest describes it.
struct SweepFolder {
  std::string path;
  SweepManifest manifest;
  std::vector<SweepRun> runs;  // runs[i] is manifest.runs[i], as expand_runs gives it
};

// std::runtime_error naming the folder for one that is not a sweep folder (no sweep.json, or one
// whose runs are not those of its grid and seeds).
SweepFolder read_sweep_folder(const std::string& path);

// Each run's status (from `manifest`) and, for a run started, its result from
// <folder>/<run>/metrics.jsonl; a log that cannot be read is said on stderr and gives no result.
std::vector<RunOutcome> logged_outcomes(const std::string& folder, const std::vector<SweepRun>& runs,
                                        const SweepManifest& manifest);

// A sweep folder's summary from its runs' logs (the best validation values); sources: its path.
SweepSummary logged_summary(const SweepFolder& folder);

// The name of a sweep folder in a table of several: its last component ("runs/vit/" is "vit").
std::string sweep_name(const std::string& folder);

// Several sweeps' summaries (one source each) as one: a first axis `sweep` whose values are the
// folders' names in the order given, then the shared axes, each with the values of every sweep
// (the first sweep's in its order, then those the next ones add); the rows of each sweep in turn.
// One summary is returned as it is. std::invalid_argument, naming the folder and what differs,
// for another metric or direction, other grid keys or another order of them, another split, and
// two folders of the same name.
SweepSummary merge_summaries(const std::vector<SweepSummary>& summaries);

// The value of `metric` in an eval-<split>.json that `rune eval` wrote (a JSON object of numbers);
// std::runtime_error naming the file when it cannot be read, or the metric is missing or not finite.
double read_eval_value(const std::string& path, const std::string& metric);

// ------------------------------------------------------------------------- running

struct SweepRequest {
  std::string config;                     // the TOML config every run starts from
  std::vector<std::string> grid;          // "key=v1,v2,..." flags
  std::vector<std::string> sets;          // "key=value" overrides every run shares
  int seeds = 1;                          // runs per combination
  int jobs = 1;                           // runs at a time
  std::string out;                        // the sweep folder; "" is <run.dir>/sweep-<config stem>
  bool retry_failed = false;              // rerun failed runs too (done and diverged ones never)
  std::string binary = "/proc/self/exe";  // the rune executable each run is started with
  // Called with the sweep folder and the summary so far after each run ends and at the end
  // (`rune sweep` writes the table and plots there).
  std::function<void(const std::string& folder, const SweepSummary& summary)> after_run;
};

// Checks every combination's config (a bad key or value is refused naming the combination, before
// anything runs), then runs each unfinished run in order, `jobs` at a time: done and diverged runs
// (and failed ones, unless retry_failed) are skipped, a run with a checkpoints/last.h5 resumes from
// it, any other starts afresh. Ctrl-C (SIGINT or SIGTERM) stops the children, which save last.h5,
// and returns 130; otherwise 0 once every run has ended, whatever its status. Throws for bad
// input, and for a sweep folder that holds another sweep or that another rune sweep is using.
int run_sweep(const SweepRequest& request);

// `rune sweep --summarize DIR [DIR ...]`: the table of finished sweeps, on another split, or of
// several sweeps together.
struct SummarizeRequest {
  std::vector<std::string> folders;       // sweep folders
  std::string split;                      // "": the best validation values
  int jobs = 1;                           // evaluations at a time
  std::string out;                        // where the table goes; "" is the folder when there is one
  std::string binary = "/proc/self/exe";  // the rune executable each evaluation is started with
  // Writes the table and plots of `summary` into `folder` (`rune sweep` passes report's writer).
  std::function<void(const std::string& folder, const SweepSummary& summary)> write;
};

// Reads every folder's manifest and checks that their tables can be merged (merge_summaries)
// before anything runs. With a split, each done run's value is its checkpoints/best.h5 evaluated
// on that split: read from <folder>/<run>/eval-<split>.json, and where that is missing or older
// than best.h5, written first by a child `rune eval <best.h5> --split S --out <folder>/<run>`
// (its output appended to <folder>/<run>.eval-<split>.log), `jobs` at a time. A run whose
// evaluation fails (or that has no best.h5) is said by name and counts as failed; the others go
// on. Then calls write. Returns 0, or 130 after Ctrl-C (no table written then). Throws for bad
// input.
int summarize_sweeps(const SummarizeRequest& request);

}  // namespace rune::train
