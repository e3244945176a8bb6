// Corpus BLEU-4 (text/bleu.hpp) against NLTK's corpus_bleu on the corpora of
// tests/parity/fixtures/bleu_cases.tsv (make fixtures writes them with python3-nltk): identical,
// noisy, too short for 4-grams, brevity-penalised, two references, length ties, an empty
// hypothesis, no match at all.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>
#include <sstream>

#include "text/bleu.hpp"

namespace rune::text {
namespace {

std::vector<std::string> split_tabs(const std::string& line) {
  std::vector<std::string> out;
  std::istringstream in(line);
  for (std::string f; std::getline(in, f, '\t');) out.push_back(f);
  if (!line.empty() && line.back() == '\t') out.emplace_back();
  return out;
}

TEST(Bleu, MatchesNltkCorpusBleu) {
  const std::string path = std::string(RUNE_PARITY_DIR) + "/bleu_cases.tsv";
  std::ifstream in(path);
  ASSERT_TRUE(in) << path;
  std::map<std::string, std::vector<std::vector<Tokens>>> refs;
  std::map<std::string, std::vector<Tokens>> hyps;
  std::map<std::string, double> want;
  for (std::string line; std::getline(in, line);) {
    const std::vector<std::string> f = split_tabs(line);
    if (line[0] == '=') {
      want[f[0].substr(1)] = std::stod(f[1]);
      continue;
    }
    hyps[f[0]].push_back(split_words(f[1]));
    std::vector<Tokens> r;
    for (std::size_t i = 2; i < f.size(); ++i) r.push_back(split_words(f[i]));
    refs[f[0]].push_back(r);
  }
  ASSERT_EQ(want.size(), 8u);
  for (const auto& [name, score] : want) {
    const double got = corpus_bleu(refs[name], hyps[name]);
    EXPECT_NEAR(got, score, 1e-12 + 1e-9 * score) << name;
  }
}

TEST(Bleu, EdgesAndErrors) {
  EXPECT_EQ(split_words("  deux   cent\tun \n"), (Tokens{"deux", "cent", "un"}));
  const Tokens s = split_words("quatre vingt dix neuf mille");
  EXPECT_DOUBLE_EQ(corpus_bleu({{s}}, {s}), 1.0);
  EXPECT_EQ(corpus_bleu({{s}}, {Tokens{}}), 0.0);
  EXPECT_THROW(corpus_bleu({{s}}, {s, s}), std::invalid_argument);
  EXPECT_THROW(corpus_bleu({{}}, {s}), std::invalid_argument);
}

}  // namespace
}  // namespace rune::text
