// rune heads CKPT [--split] [--prune] [--out DIR] ...: the head analysis of a checkpoint
// (analysis/head_analysis.hpp) and its report (report/head_report.hpp).
#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "analysis/head_analysis.hpp"
#include "cli/command.hpp"
#include "report/head_report.hpp"
#include "train/files.hpp"
#include "train/trainer.hpp"

namespace rune::cli {

namespace {
namespace fs = std::filesystem;
using namespace analysis;

struct HeadsRequest {
  std::string checkpoint;
  std::vector<std::string> sets;  // overrides of the checkpoint's config
  std::string out_dir;
  bool prune = false;
  HeadAnalysisOptions analysis;  // the split, limits and thresholds
};

int heads(const HeadsRequest& request) {
  const std::unique_ptr<LoadedTask> loaded = load_task(request.checkpoint, request.sets);
  train::capability<analysis::HeadAnalysisSource>(*loaded->task, "checkpoint " + request.checkpoint);
  HeadAnalysis analysis = analyse_heads(*loaded->task, request.analysis);
  const std::string& split = request.analysis.split;
  if (request.prune) prune_heads(*loaded->task, analysis);
  const std::string run = train::run_folder_of(request.checkpoint);
  const std::string out = !request.out_dir.empty() ? request.out_dir
                          : !run.empty()           ? (fs::path(run) / ("heads-" + split)).string()
                                                   : "heads-" + split;
  const std::string title =
      fs::path(request.checkpoint).filename().string() + " (step " + std::to_string(loaded->checkpoint.step) + ")";

  std::printf("%s, %s split, %lld examples, mean loss %.4f\n", request.checkpoint.c_str(), split.c_str(),
              static_cast<long long>(analysis.examples), analysis.loss);
  std::size_t width = 6;
  for (const ModuleHeads& m : analysis.modules) width = std::max(width, head_module_label(m.path).size());
  for (const ModuleHeads& m : analysis.modules) {
    std::printf("  %-*s", static_cast<int>(width), head_module_label(m.path).c_str());
    for (const HeadResult& r : m.heads)
      std::printf("  %.4s %.2f%s", pattern_name(r.stats.pattern).c_str(), r.importance, r.dead ? "!" : " ");
    std::printf("\n");
  }
  std::printf("  (per head: pattern class, importance normalised per module; ! marks a dead head)\n");
  std::printf("redundant pairs (JS < %g): %zu; dead heads: ", request.analysis.redundant_js, analysis.redundant.size());
  std::int64_t dead = 0;
  for (const ModuleHeads& m : analysis.modules)
    for (const HeadResult& r : m.heads) dead += r.dead;
  std::printf("%lld\n", static_cast<long long>(dead));
  for (const auto& [name, can] : analysis.prunable)
    std::printf("pruning: %lld heads can go before %s drops by more than one point (%.4f at first)\n",
                static_cast<long long>(can), name.c_str(), analysis.pruning.front().metrics.at(name));
  train::FileTransaction files;  // the report's files replace the previous ones all together, or none
  const std::vector<std::string> written = report::write_head_report(analysis, out, title);
  files.commit();
  for (const std::string& file : written) std::printf("wrote %s\n", file.c_str());
  return 0;
}

}  // namespace

Command add_heads(CLI::App& app) {
  auto r = std::make_shared<HeadsRequest>();
  auto quiet = std::make_shared<bool>(false);
  CLI::App* c = app.add_subcommand(
      "heads", "Analyse every attention head of a checkpoint on a split: patterns, importance, redundancy, pruning");
  add_checkpoint_argument(*c, r->checkpoint);
  c->add_option("--split", r->analysis.split, "val or test")->check(CLI::IsMember({"val", "test"}));
  c->add_option("--out", r->out_dir,
                "Folder for heads.md, the CSVs and PNGs; default: heads-<split> in the run folder");
  c->add_flag("--prune", r->prune, "Mask heads in increasing order of importance, evaluating the task after each");
  c->add_option("--limit", r->analysis.limit,
                "Analyse only the split's first N examples (0: all; pruning evaluates all)")
      ->check(CLI::NonNegativeNumber);
  c->add_option("--batch-size", r->analysis.batch_size, "Examples per analysis batch")->check(CLI::PositiveNumber);
  c->add_option("--redundant-js", r->analysis.redundant_js,
                "Head pairs of a module below this mean Jensen-Shannon divergence (nats) are redundant")
      ->check(CLI::Range(0.0, 1.0));
  c->add_option("--dead", r->analysis.dead_fraction, "Heads below this fraction of the largest raw importance are dead")
      ->check(CLI::Range(0.0, 1.0));
  c->add_option("--set", r->sets, "Override a key of the checkpoint's config");
  c->add_flag("--no-progress", *quiet, "No progress lines on stderr");
  return {c, [r, quiet] {
            r->analysis.progress = !*quiet;
            return heads(*r);
          }};
}

}  // namespace rune::cli
