// rune align CKPT [--split] [--limit N] [--example I] [--out DIR]: word alignment read from the
// cross-attention of a checkpoint, scored against the task's gold links (analysis/alignment.hpp),
// and its report (report/alignment_report.hpp).
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>

#include "analysis/alignment.hpp"
#include "cli/command.hpp"
#include "report/alignment_report.hpp"
#include "train/files.hpp"
#include "train/format.hpp"
#include "train/trainer.hpp"

namespace rune::cli {

namespace {
namespace fs = std::filesystem;
using namespace analysis;

struct AlignRequest {
  std::string checkpoint;
  std::vector<std::string> sets;  // overrides of the checkpoint's config
  std::string out_dir;
  AlignmentOptions options;  // the split, limit, example shown and progress
};

int align(const AlignRequest& request) {
  const std::unique_ptr<LoadedTask> loaded = load_task(request.checkpoint, request.sets);
  auto& source = train::capability<AlignmentSource>(*loaded->task, "checkpoint " + request.checkpoint);
  const AlignmentResult result = align_examples(source, request.options);
  const std::string& split = request.options.split;
  const std::string run = train::run_folder_of(request.checkpoint);
  const std::string folder =
      "align-" + split + (request.options.rows == AlignmentRows::reads ? "-reads" : "");  // beside the default's
  const std::string out = !request.out_dir.empty() ? request.out_dir
                          : !run.empty()           ? (fs::path(run) / folder).string()
                                                   : folder;
  const std::string title =
      fs::path(request.checkpoint).filename().string() + " (step " + std::to_string(loaded->checkpoint.step) + ")";

  std::printf("%s, %s split, %lld examples, %lld gold links, the rows that %s each target token\n",
              request.checkpoint.c_str(), split.c_str(), static_cast<long long>(result.examples),
              static_cast<long long>(result.gold_links),
              request.options.rows == AlignmentRows::predicts ? "predict" : "read");
  std::size_t width = 9;
  for (const AlignmentCandidate& c : result.candidates) width = std::max(width, c.name().size());
  std::printf("  %-*s  precision  recall    AER\n", static_cast<int>(width), "candidate");
  for (std::size_t i = 0; i < result.candidates.size(); ++i) {
    const AlignmentCandidate& c = result.candidates[i];
    std::printf("  %-*s  %9s  %6s  %5s%s\n", static_cast<int>(width), c.name().c_str(),
                train::fixed(c.counts.precision(), 3).c_str(), train::fixed(c.counts.recall(), 3).c_str(),
                train::fixed(c.counts.aer(), 3).c_str(), i == result.best ? "  <- best head" : "");
  }
  std::printf("%s\n", report::alignment_summary(result).c_str());
  train::FileTransaction files;  // the report's files replace the previous ones all together, or none
  const std::vector<std::string> written = report::write_alignment_report(result, out, title);
  files.commit();
  for (const std::string& file : written) std::printf("wrote %s\n", file.c_str());
  return 0;
}

}  // namespace

Command add_align(CLI::App& app) {
  auto r = std::make_shared<AlignRequest>();
  auto quiet = std::make_shared<bool>(false);
  CLI::App* c = app.add_subcommand(
      "align", "Align words from the cross-attention of a checkpoint and score every head against gold links");
  add_checkpoint_argument(*c, r->checkpoint);
  c->add_option("--split", r->options.split, "val or test")->check(CLI::IsMember({"val", "test"}));
  c->add_option("--limit", r->options.limit, "Align only the split's first N examples with gold links (0: all)")
      ->check(CLI::NonNegativeNumber);
  c->add_option("--rows", r->options.rows,
                "The decoder rows of a target token: the row that predicts it, or the one that reads it as input "
                "(shift-att, Chen et al. 2020)")
      ->transform(CLI::CheckedTransformer(std::map<std::string, AlignmentRows>{{"predicts", AlignmentRows::predicts},
                                                                               {"reads", AlignmentRows::reads}}));
  c->add_option("--example", r->options.example, "The example drawn in alignment.png (an index into the split)")
      ->check(CLI::NonNegativeNumber);
  c->add_option("--out", r->out_dir,
                "Folder for alignment.md, alignment.csv and alignment.png; default: align-<split> (align-<split>-reads "
                "with --rows reads) in the run folder");
  c->add_option("--set", r->sets, "Override a key of the checkpoint's config");
  c->add_flag("--no-progress", *quiet, "No progress lines on stderr");
  return {c, [r, quiet] {
            r->options.progress = !*quiet;
            return align(*r);
          }};
}

}  // namespace rune::cli
