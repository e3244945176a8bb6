// `rune report`: one self-contained HTML page comparing runs. Everything is inline (the data as
// JSON, the CSS, the script, every PNG as a base64 data URI), so the page opens from disk in any
// browser, with no server and no network.
//
//   std::vector<RunData> runs;
//   for (const RunFolder& f : run_folders({"runs/a", "runs/sweep-lr"})) runs.push_back(read_run(f.path, f.name));
//   write_html_report("report.html", runs);
//
// The page: each run's curves of a metric chosen from a list (every numeric key of the runs'
// metrics.jsonl), the validation metric drawn dashed over its training twin (loss and val_loss),
// x axis step or elapsed time, TensorBoard's debiased exponential moving average as smoothing; a
// table of final and best validation metrics; the runs' flattened configs side by side with the
// keys that differ first and marked; each run's eval-<split>.json and PNGs.
//
// Reading is tolerant of a run in progress: a metrics.jsonl line that is not a JSON object of
// numbers (a truncated last line) is skipped and named in the run's notes, a run with no
// validation line yet shows its training curves alone. A folder that is neither a run nor a
// sweep of runs, or that cannot be read, is an error naming it.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "train/metrics_log.hpp"

namespace rune::report {

// RFC 4648 base64 (the standard alphabet, '=' padding) of any bytes.
std::string base64(const std::string& bytes);

// Text for HTML (element content and quoted attribute values): & < > " ' as character references.
std::string html_escape(const std::string& text);

// JSON text that is safe inside <script type="application/json">: nlohmann-json's dump with
// every <, > and & written as \u003c, \u003e, \u0026 (so no "</script>" or "<!--" can close the
// element early), U+2028 and U+2029 escaped likewise, invalid UTF-8 replaced by U+FFFD.
std::string json_for_script(const std::string& dumped_json);

// Which way a metric improves: the task's own word for its primary metric, otherwise by name.
enum class Direction { higher, lower, unknown };
// The rule by name (the "val_" prefix is ignored): accuracy, exact_match, bleu, chrf, f1,
// precision, recall go up; loss, perplexity/ppl, bits_per_char/bpc, error, aer go down; any other
// is unknown (its best is not shown). Documented in docs/report.md.
Direction direction_by_name(const std::string& metric);

// One PNG of a run folder, found anywhere below it (checkpoints/ and curves.png aside: the page
// draws the curves itself).
struct RunImage {
  std::string path;     // relative to the run folder: "heads-test/importance.png"
  std::string caption;  // what it shows, when the file name says so; else ""
  std::string png;      // the file's bytes
};

// One eval-<split>.json (rune eval): the split and its record (step and metrics).
struct RunEvaluation {
  std::string split;
  train::MetricsRecord metrics;
};

struct RunData {
  std::string name;    // the folder's name; "sweep/run" for a run of a sweep folder
  std::string folder;  // the path as given
  // config.toml flattened: dotted key and its value as TOML text, sorted by key; empty with a
  // note when the run has no config.toml.
  std::vector<std::pair<std::string, std::string>> config;
  std::vector<train::MetricsRecord> records;  // metrics.jsonl's good lines, NaN for null
  std::vector<RunEvaluation> evaluations;
  std::vector<RunImage> images;
  // The task's primary validation metric ("val_exact_match") and its direction, when the config
  // names a registered task; otherwise "" and unknown.
  std::string primary_metric;
  Direction primary_direction = Direction::unknown;
  std::vector<std::string> notes;  // what a reader should know: skipped lines, missing files
};

// A run folder to read, and the name the page gives it.
struct RunFolder {
  std::string path;
  std::string name;  // the folder's name; "sweep/run" for a run of a sweep folder
};

// The run folders named by `paths`, in order: a run folder (it holds config.toml or
// metrics.jsonl) as itself, a sweep folder (no run files of its own, subfolders that are runs, as
// `rune sweep` writes them) as its runs in name order. Two runs of one name are named by their
// paths instead. std::runtime_error names a path that does not exist, is not a folder, cannot be
// read, or is neither kind.
std::vector<RunFolder> run_folders(const std::vector<std::string>& paths);

// Reads a run folder; `name` defaults to the folder's own name ("sweep/run" for a sweep's run is
// the caller's). Throws std::runtime_error naming the folder when it cannot be read at all.
RunData read_run(const std::string& folder, const std::string& name = "");

// What the elapsed-time axis puts each metrics record at, in seconds: a training line's
// elapsed_s; a validation line (no elapsed_s of its own) at the elapsed_s of its step, taken
// from the training lines (linearly between the nearest ones; the last one past the end), plus
// its eval_s, since the validation ran after that training step. NaN when no line has elapsed_s.
std::vector<double> record_times(const std::vector<train::MetricsRecord>& records);

// The metric's final value (the last finite one logged) and its best (by `direction`; none when
// unknown) with its step, over a run's records.
struct MetricSummary {
  std::optional<double> final_value, best_value;
  double final_step = 0, best_step = 0;
};
MetricSummary summarize(const std::vector<train::MetricsRecord>& records, const std::string& key, Direction direction);

// The whole page as one HTML string; `title` heads it.
std::string html_report(const std::vector<RunData>& runs, const std::string& title = "Runestone report");

// html_report(runs, title) as the file `path`, atomically (train::write_file).
void write_html_report(const std::string& path, const std::vector<RunData>& runs,
                       const std::string& title = "Runestone report");

}  // namespace rune::report
