// rune score HYPOTHESES REFERENCE [REFERENCE ...]: corpus BLEU and chrF of a file of translations
// against one or more reference files, line by line, as sacreBLEU computes them by default (13a
// tokens, exp smoothing; chrF with character 6-grams and beta 2), so that translations made
// anywhere (another framework's, say) are scored by the same code as rune eval's.
#include <cstdio>
#include <fstream>

#include "cli/command.hpp"
#include "text/sacrebleu.hpp"

namespace rune::cli {

namespace {

std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + " cannot be read");
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(line);
  }
  return lines;
}

int score(const std::string& hypotheses_path, const std::vector<std::string>& reference_paths,
          const text::BleuOptions& bleu, int word_order) {
  const std::vector<std::string> hypotheses = read_lines(hypotheses_path);
  std::vector<std::vector<std::string>> references;
  for (const std::string& path : reference_paths) {
    references.push_back(read_lines(path));
    if (references.back().size() != hypotheses.size())
      throw std::runtime_error(path + " has " + std::to_string(references.back().size()) + " lines, " +
                               hypotheses_path + " " + std::to_string(hypotheses.size()) +
                               ": a reference file has one line per translation");
  }
  std::printf("%s\n", text::corpus_bleu_sacre(hypotheses, references, bleu).text().c_str());
  text::ChrfOptions chrf;
  chrf.word_order = word_order;
  chrf.lowercase = bleu.lowercase;
  std::printf("chrF2%s = %.2f\n", word_order > 0 ? std::string(word_order, '+').c_str() : "",
              text::corpus_chrf(hypotheses, references, chrf));
  return 0;
}

}  // namespace

Command add_score(CLI::App& app) {
  auto hypotheses = std::make_shared<std::string>();
  auto references = std::make_shared<std::vector<std::string>>();
  auto bleu = std::make_shared<text::BleuOptions>();
  auto word_order = std::make_shared<int>(0);
  CLI::App* c = app.add_subcommand(
      "score", "Score a file of translations against reference files, line by line: BLEU and chrF as sacreBLEU");
  c->add_option("hypotheses", *hypotheses, "The translations, one per line")->required()->check(CLI::ExistingFile);
  c->add_option("references", *references, "One or more reference files, one line per translation")
      ->required()
      ->check(CLI::ExistingFile);
  c->add_option("--tokenize", bleu->tokenize, "BLEU's tokenizer: 13a (sacreBLEU's default) or none")
      ->check(CLI::IsMember({"13a", "none"}));
  c->add_flag("--lowercase", bleu->lowercase, "Compare lowercased text");
  c->add_option("--chrf-word-order", *word_order, "Word n-grams of chrF (2: chrF++)")->check(CLI::Range(0, 6));
  return {c, [=] { return score(*hypotheses, *references, *bleu, *word_order); }};
}

}  // namespace rune::cli
