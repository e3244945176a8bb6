// SentencePiece subwords (text/subword.hpp): round trips on seen and unseen text, the fixed special
// ids, deterministic training, a model restored from its bytes, and the errors.
#include <gtest/gtest.h>

#include <random>

#include "tests/helpers.hpp"
#include "text/subword.hpp"

namespace rune::text {
namespace {

// Sentences from a small English and Spanish word list: enough text for a few hundred pieces.
std::vector<std::string> corpus() {
  const std::vector<std::string> words = {
      "In",       "the",       "beginning,", "God",    "created", "heavens", "and",    "earth.",  "principio",
      "crió",     "Dios",      "los",        "cielos", "tierra",  "waters",  "aguas",  "light",   "luz",
      "darkness", "tinieblas", "said,",      "dijo:",  "“Let",    "there",   "be",     "was",     "fué",
      "Spirit",   "Espíritu",  "hovering",   "movía",  "surface", "haz",     "abismo", "evening", "mañana"};
  std::mt19937 g(7);
  std::vector<std::string> out;
  for (int s = 0; s < 400; ++s) {
    std::string line;
    const int n = 4 + static_cast<int>(g() % 12);
    for (int w = 0; w < n; ++w) line += (w ? " " : "") + words[g() % words.size()];
    out.push_back(line);
  }
  return out;
}

const SubwordModel& model() {
  static const SubwordModel m = SubwordModel::train(corpus(), {320, "unigram", 1.0});
  return m;
}

TEST(Subword, RoundTripsSeenAndUnseenText) {
  for (const std::string& s : corpus()) ASSERT_EQ(model().decode(model().encode(s)), s);
  // characters never seen in training come back through their UTF-8 bytes
  for (const std::string s : {"Ἐν ἀρχῇ ἦν ὁ λόγος", "Zebulun’s 12,000 🙂 <eos> tabs", "x"}) {
    const auto pieces = model().encode(s);
    EXPECT_EQ(model().decode(pieces), s) << s;
  }
}

TEST(Subword, SpecialsHaveTheVocabularyIds) {
  const auto pieces = model().pieces();
  ASSERT_EQ(static_cast<std::int64_t>(pieces.size()), 320);
  EXPECT_EQ(model().size(), 320);
  EXPECT_EQ(std::vector<std::string>(pieces.begin(), pieces.begin() + 4),
            (std::vector<std::string>{"<pad>", "<bos>", "<eos>", "<unk>"}));
  // encoding never produces a special: <eos> typed in text is ordinary characters
  for (const std::string& p : model().encode("a <eos> b <pad>")) EXPECT_TRUE(p != "<eos>" && p != "<pad>") << p;
}

TEST(Subword, TrainingIsDeterministicAndBpeWorks) {
  EXPECT_EQ(SubwordModel::train(corpus(), {320, "unigram", 1.0}).bytes(), model().bytes());
  const SubwordModel bpe = SubwordModel::train(corpus(), {300, "bpe", 1.0});
  EXPECT_EQ(bpe.size(), 300);
  EXPECT_NE(bpe.bytes(), model().bytes());
  EXPECT_EQ(bpe.decode(bpe.encode("God said, “Let there be light”")), "God said, “Let there be light”");
}

TEST(Subword, RestoredFromItsBytes) {
  const SubwordModel copy = SubwordModel::from_bytes(model().bytes(), "checkpoint x.h5 /meta/source_subwords");
  EXPECT_EQ(copy.pieces(), model().pieces());
  EXPECT_EQ(copy.encode("the Spirit of God hovering"), model().encode("the Spirit of God hovering"));
  const std::string err = error_of([] { SubwordModel::from_bytes("not a model", "checkpoint x.h5 /meta/m"); });
  EXPECT_NE(err.find("checkpoint x.h5 /meta/m is not a SentencePiece model"), std::string::npos) << err;
}

TEST(Subword, WordsOfPieces) {
  const std::string u = "\xe2\x96\x81";
  EXPECT_EQ(SubwordModel::word_of_pieces({u + "In", u + "the", u + "begin", "ning", ",", u, "x"}),
            (std::vector<int>{0, 1, 2, 2, 2, 3, 3}));
  EXPECT_EQ(SubwordModel::word_of_pieces({"ab", "c", u + "d"}), (std::vector<int>{0, 0, 1}));
  EXPECT_TRUE(SubwordModel::word_of_pieces({}).empty());
  // on real pieces: one word index per space-separated word
  const auto pieces = model().encode("In the beginning, God created");
  const auto words = SubwordModel::word_of_pieces(pieces);
  EXPECT_EQ(words.front(), 0);
  EXPECT_EQ(words.back(), 4);
}

TEST(Subword, Errors) {
  std::string err = error_of([] { SubwordModel::train(corpus(), {100000, "unigram", 1.0}); });
  EXPECT_NE(err.find("subword vocabulary of 100000 pieces is too large for the training text"), std::string::npos)
      << err;
  err = error_of([] { SubwordModel::train(corpus(), {320, "wordpiece", 1.0}); });
  EXPECT_NE(err.find("subword model type 'wordpiece': expected unigram or bpe"), std::string::npos) << err;
  err = error_of([] { SubwordModel::train(corpus(), {100, "unigram", 1.0}); });
  EXPECT_NE(err.find("at least 300"), std::string::npos) << err;
}

}  // namespace
}  // namespace rune::text
