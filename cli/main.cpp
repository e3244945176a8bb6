// The `rune` command: train, eval, info, translate, attention and heads. Subcommand parsing by CLI11 (Debian's libcli11-dev).
#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>

#include "cli/task.hpp"
#include "cli/trainer.hpp"

int main(int argc, char** argv) {
  CLI::App app{"rune: train and inspect Transformer models (Runestone)"};
  app.require_subcommand(1);

  rune::cli::TrainRequest train;
  CLI::App* t = app.add_subcommand("train", "Train a model from a TOML config into a new run folder");
  t->add_option("config", train.config, "The config file (examples/*/*.toml)")->required()->check(CLI::ExistingFile);
  t->add_option("--set", train.sets, "Override a config key: --set model.d_model=256 (repeatable)");
  t->add_option("--resume", train.resume, "Continue from a checkpoint of a run folder (<run>/checkpoints/last.h5)")
      ->check(CLI::ExistingFile);
  bool no_progress = false;
  t->add_flag("--no-progress", no_progress, "A log line every train.log_every steps instead of the live line");

  std::string checkpoint;
  rune::cli::EvalRequest eval;
  CLI::App* e = app.add_subcommand("eval", "Evaluate a checkpoint on a split of its task's data");
  e->add_option("checkpoint", eval.checkpoint, "The checkpoint (.h5)")->required()->check(CLI::ExistingFile);
  e->add_option("--split", eval.split, "val or test")->check(CLI::IsMember({"val", "test"}));
  e->add_option("--set", eval.sets, "Override a key of the checkpoint's config (the data or the image size, say)");
  e->add_option("--out", eval.out_dir, "Folder for the reports (eval-<split>.json, confusion matrix); default: the run folder");
  e->add_option("--predictions", eval.predictions, "Write one line per example (index, label, predicted) to this file");

  CLI::App* i = app.add_subcommand("info", "Print a checkpoint's step, metrics, parameters and config");
  i->add_option("checkpoint", checkpoint, "The checkpoint (.h5)")->required()->check(CLI::ExistingFile);

  std::vector<std::string> sentences;
  CLI::App* tr = app.add_subcommand("translate", "Translate sentences with a translation checkpoint (stdin when none given)");
  tr->add_option("checkpoint", checkpoint, "The checkpoint (.h5)")->required()->check(CLI::ExistingFile);
  tr->add_option("sentences", sentences, "Sentences to translate; without them, one per line from stdin");
  bool scores = false;
  tr->add_flag("--scores", scores, "Follow each translation by a tab and its log-probability under the model");

  std::string sentence, image, out_dir = ".";
  CLI::App* at = app.add_subcommand("attention", "Draw every attention head of a checkpoint on a sentence (translation) or an image (ViT)");
  at->add_option("checkpoint", checkpoint, "The checkpoint (.h5)")->required()->check(CLI::ExistingFile);
  auto* sentence_option = at->add_option("sentence", sentence, "The source sentence (translation)");
  auto* image_option = at->add_option("--image", image, "A PNG file, or the index of a test-split image (ViT)");
  sentence_option->excludes(image_option);
  at->add_option("--out", out_dir, "Folder for the PNGs and the weights as CSV");

  rune::cli::HeadsRequest heads;
  bool heads_quiet = false;
  CLI::App* hd = app.add_subcommand("heads", "Analyse every attention head of a checkpoint on a split: patterns, importance, redundancy, pruning");
  hd->add_option("checkpoint", heads.checkpoint, "The checkpoint (.h5)")->required()->check(CLI::ExistingFile);
  hd->add_option("--split", heads.analysis.split, "val or test")->check(CLI::IsMember({"val", "test"}));
  hd->add_option("--out", heads.out_dir, "Folder for heads.md, the CSVs and PNGs; default: heads-<split> in the run folder");
  hd->add_flag("--prune", heads.prune, "Mask heads in increasing order of importance, evaluating the task after each");
  hd->add_option("--limit", heads.analysis.limit, "Analyse only the split's first N examples (0: all; pruning evaluates all)")->check(CLI::NonNegativeNumber);
  hd->add_option("--batch-size", heads.analysis.batch_size, "Examples per analysis batch")->check(CLI::PositiveNumber);
  hd->add_option("--redundant-js", heads.analysis.redundant_js, "Head pairs of a module below this mean Jensen-Shannon divergence (nats) are redundant")
      ->check(CLI::Range(0.0, 1.0));
  hd->add_option("--dead", heads.analysis.dead_fraction, "Heads below this fraction of the largest raw importance are dead")->check(CLI::Range(0.0, 1.0));
  hd->add_option("--set", heads.sets, "Override a key of the checkpoint's config");
  hd->add_flag("--no-progress", heads_quiet, "No progress lines on stderr");

  CLI11_PARSE(app, argc, argv);
  try {
    if (t->parsed()) {
      train.progress = !no_progress;
      return rune::cli::train(train);
    }
    if (e->parsed()) return rune::cli::evaluate(eval);
    if (hd->parsed()) {
      heads.analysis.progress = !heads_quiet;
      return rune::cli::heads(heads);
    }
    if (tr->parsed()) return rune::cli::translate(checkpoint, sentences, scores);
    if (at->parsed()) {
      if (!image.empty()) return rune::cli::image_attention(checkpoint, image, out_dir);
      if (sentence.empty()) throw std::invalid_argument("attention needs a sentence (translation) or --image (ViT)");
      return rune::cli::attention(checkpoint, sentence, out_dir);
    }
    return rune::cli::info(checkpoint);
  } catch (const std::exception& ex) {
    std::fprintf(stderr, "rune: %s\n", ex.what());
    return rune::cli::kExitError;
  }
}
