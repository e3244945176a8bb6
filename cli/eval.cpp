// rune eval CKPT [--split val|test|...] [--set key=value ...] [--out DIR] [--predictions FILE]
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "cli/command.hpp"
#include "train/files.hpp"
#include "train/metrics_log.hpp"
#include "train/trainer.hpp"

namespace rune::cli {

namespace {

struct EvalRequest {
  std::string checkpoint, split = "test";
  std::vector<std::string> sets;  // overrides of the checkpoint's config ("data.image_size=32")
  std::string out_dir;            // reports (eval-<split>.json, a confusion matrix); default: the run folder
  std::string predictions;        // a file for one line per example, if the task has them
};

int evaluate(const EvalRequest& request) {
  const std::unique_ptr<LoadedTask> loaded = load_task(request.checkpoint, request.sets);
  train::Task& task = *loaded->task;
  // a capability the request needs is checked before the evaluation's work
  train::EvalReports* reports = train::find_capability<train::EvalReports>(task);
  if (!request.predictions.empty() && !reports)
    train::capability<train::EvalReports>(task, "checkpoint " + request.checkpoint);  // throws, naming who can
  const std::vector<std::string> splits = task.splits();
  if (std::find(splits.begin(), splits.end(), request.split) == splits.end()) {
    std::string names;
    for (const std::string& s : splits) names += (names.empty() ? "" : ", ") + s;
    throw std::runtime_error("--split " + request.split + ": the '" + task.name() + "' task of " + request.checkpoint +
                             " has no such split (it has " + names + ")");
  }
  const std::map<std::string, double> metrics = task.evaluate(request.split);
  std::printf("%s, step %lld, %s split:\n", request.checkpoint.c_str(), static_cast<long long>(loaded->checkpoint.step),
              request.split.c_str());
  std::vector<std::pair<std::string, double>> record{{"step", static_cast<double>(loaded->checkpoint.step)}};
  std::string non_finite;  // "loss = nan, bleu = nan"
  for (const auto& [k, v] : metrics) {
    std::printf("  %-16s %.6f\n", k.c_str(), v);
    record.emplace_back(k, v);
    if (!std::isfinite(v))
      non_finite += (non_finite.empty() ? "" : ", ") + k + " = " + (std::isnan(v) ? "nan" : v > 0 ? "inf" : "-inf");
  }
  if (!non_finite.empty()) {  // no report of meaningless numbers
    std::fflush(stdout);
    std::fprintf(stderr,
                 "rune: the metrics of %s on the %s split are not finite (%s): the checkpoint's parameters or the "
                 "data are likely bad\n",
                 request.checkpoint.c_str(), request.split.c_str(), non_finite.c_str());
    return train::kExitNonFinite;
  }
  // reports go to --out, else next to the run's other files, else here
  const std::string run = train::run_folder_of(request.checkpoint);
  const std::string out = !request.out_dir.empty() ? request.out_dir : !run.empty() ? run : ".";
  std::filesystem::create_directories(out);
  train::FileTransaction files;  // the reports replace the previous ones all together, or none
  std::vector<std::string> written;
  if (!request.out_dir.empty() || !run.empty())
    train::write_file((std::filesystem::path(out) / ("eval-" + request.split + ".json")).string(),
                      train::metrics_json(record));
  if (reports) {
    written = reports->write_reports(request.split, out);
    if (!request.predictions.empty()) {
      reports->write_predictions(request.predictions);
      written.push_back(request.predictions);
    }
  }
  files.commit();
  for (const std::string& file : written) std::printf("wrote %s\n", file.c_str());
  return 0;
}

}  // namespace

Command add_eval(CLI::App& app) {
  auto r = std::make_shared<EvalRequest>();
  CLI::App* c = app.add_subcommand("eval", "Evaluate a checkpoint on a split of its task's data");
  add_checkpoint_argument(*c, r->checkpoint);
  c->add_option("--split", r->split,
                "val or test, or a split of the task's own (the numbers: domain, every number; rare, the held-out "
                "rare forms)");
  c->add_option("--set", r->sets, "Override a key of the checkpoint's config (the data or the image size, say)");
  c->add_option("--out", r->out_dir,
                "Folder for the reports (eval-<split>.json, confusion matrix); default: the run folder");
  c->add_option(
      "--predictions", r->predictions,
      "Write one line per example (index, label, predicted, and the task's scores: a ViT's logits) to this file");
  return {c, [r] { return evaluate(*r); }};
}

}  // namespace rune::cli
