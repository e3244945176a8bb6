// analysis/alignment: the scores (precision, recall, AER) on hand-counted links, word-level
// attention over subwords and specials, argmax links, the position baseline, the candidates and
// the choice of the best head, over hand-built examples.
#include "analysis/alignment.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "tests/helpers.hpp"

namespace rune::analysis {
namespace {

TEST(Alignment, PrecisionRecallAndAerOfGoldLinks) {
  // A = {(0,0), (1,1), (2,1)}, G = {(0,0), (1,1), (2,2), (3,3)}: |A ∩ G| = 2
  const AlignmentCounts c = count_links({{0, 0}, {1, 1}, {2, 1}}, {{0, 0}, {1, 1}, {2, 2}, {3, 3}});
  EXPECT_EQ(c.predicted, 3);
  EXPECT_EQ(c.sure, 4);
  EXPECT_EQ(c.predicted_sure, 2);
  EXPECT_EQ(c.predicted_possible, 2);
  EXPECT_DOUBLE_EQ(c.precision(), 2.0 / 3);
  EXPECT_DOUBLE_EQ(c.recall(), 2.0 / 4);
  EXPECT_DOUBLE_EQ(c.aer(), 1 - 4.0 / 7);
  // all right: AER 0; all wrong: AER 1
  EXPECT_DOUBLE_EQ(count_links({{0, 0}, {1, 1}}, {{1, 1}, {0, 0}}).aer(), 0.0);
  EXPECT_DOUBLE_EQ(count_links({{0, 1}}, {{0, 0}}).aer(), 1.0);
  // a link listed twice counts once, on either side
  const AlignmentCounts twice = count_links({{0, 0}, {0, 0}, {1, 0}}, {{0, 0}, {0, 0}});
  EXPECT_EQ(twice.predicted, 2);
  EXPECT_EQ(twice.sure, 1);
  EXPECT_DOUBLE_EQ(twice.precision(), 0.5);
  // nothing predicted: precision undefined, recall 0, AER 1
  const AlignmentCounts none = count_links({}, {{0, 0}});
  EXPECT_TRUE(std::isnan(none.precision()));
  EXPECT_DOUBLE_EQ(none.recall(), 0.0);
  EXPECT_DOUBLE_EQ(none.aer(), 1.0);
  EXPECT_TRUE(std::isnan(count_links({}, {}).aer()));
}

TEST(Alignment, SureAndPossibleLinksAsOchAndNeyScoreThem) {
  // S = {(0,0)}, P = {(1,1), (2,2)} and S: |A| = 3, |A ∩ S| = 1, |A ∩ P| = 2
  const AlignmentCounts c = count_links({{0, 0}, {1, 1}, {3, 3}}, {{0, 0}}, {{1, 1}, {2, 2}});
  EXPECT_EQ(c.sure, 1);
  EXPECT_EQ(c.predicted_sure, 1);
  EXPECT_EQ(c.predicted_possible, 2);  // the sure link (0,0) is possible though P does not list it
  EXPECT_DOUBLE_EQ(c.precision(), 2.0 / 3);
  EXPECT_DOUBLE_EQ(c.recall(), 1.0);
  EXPECT_DOUBLE_EQ(c.aer(), 1 - (1.0 + 2.0) / (3 + 1));
  // a possible link predicted lowers the AER without counting as recall
  const AlignmentCounts p = count_links({{1, 1}}, {{0, 0}}, {{1, 1}});
  EXPECT_DOUBLE_EQ(p.recall(), 0.0);
  EXPECT_DOUBLE_EQ(p.aer(), 1 - 1.0 / 2);
}

TEST(Alignment, CorpusScoresSumCountsRatherThanAveragingSentences) {
  AlignmentCounts corpus = count_links({{0, 0}}, {{0, 0}});                   // precision 1
  corpus += count_links({{0, 0}, {1, 1}, {2, 2}}, {{0, 1}, {1, 0}, {2, 1}});  // precision 0
  EXPECT_DOUBLE_EQ(corpus.precision(), 1.0 / 4);                              // not (1 + 0) / 2
  EXPECT_DOUBLE_EQ(corpus.recall(), 1.0 / 4);
  EXPECT_DOUBLE_EQ(corpus.aer(), 1 - 2.0 / 8);
}

TEST(Alignment, WordAttentionSumsSubwordsAveragesRowsAndDropsSpecials) {
  // source tokens "_un" "believ" "able" "_yes" <eos>: words 0 0 0 1, then a special
  // query rows: two predict pieces of target word 0, one target word 1, the last <eos>
  const std::vector<int> key_words{0, 0, 0, 1, -1}, row_words{0, 0, 1, -1};
  const std::vector<std::vector<double>> w{
      {0.1, 0.2, 0.3, 0.2, 0.2}, {0.0, 0.0, 0.1, 0.5, 0.4}, {0.05, 0.05, 0.0, 0.8, 0.1}, {0.0, 0.0, 0.0, 0.0, 1.0}};
  const WordMatrix m = word_attention(w, key_words, row_words, 2, 2);
  ASSERT_EQ(m.size(), 2u);
  ASSERT_EQ(m[0].size(), 2u);
  EXPECT_NEAR(m[0][0], (0.6 + 0.1) / 2, 1e-12);  // summed over the word's tokens, averaged over its rows
  EXPECT_NEAR(m[0][1], (0.2 + 0.5) / 2, 1e-12);
  EXPECT_NEAR(m[1][0], 0.1, 1e-12);
  EXPECT_NEAR(m[1][1], 0.8, 1e-12);  // <eos>'s 0.1 is dropped
  // a target word without rows (cut by the model's length) has a row of zeros
  const WordMatrix cut = word_attention(w, key_words, row_words, 2, 3);
  EXPECT_EQ(cut[2], (std::vector<double>{0, 0}));
  EXPECT_NE(error_of([&] {
              word_attention(w, key_words, {0, 1}, 2, 2);
            }).find("4 query rows for 2 row words"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              word_attention(w, {0, 1}, row_words, 2, 2);
            }).find("query row 0 has 5 keys for 2"),
            std::string::npos);
}

TEST(Alignment, ArgmaxLinksEachTargetWordToItsMostAttendedSourceWord) {
  const WordMatrix m{{0.1, 0.7, 0.2}, {0.4, 0.4, 0.2}, {0, 0, 0}, {0.0, 0.1, 0.3}};
  // (source, target): the first of equals wins; a row of zeros links nothing
  EXPECT_EQ(argmax_links(m), (Links{{1, 0}, {0, 1}, {2, 3}}));
  EXPECT_TRUE(argmax_links({}).empty());
}

TEST(Alignment, PositionBaselineLinksRelativePositions) {
  EXPECT_EQ(position_links(5, 3), (Links{{0, 0}, {2, 1}, {4, 2}}));
  // j (S - 1) / (T - 1) = 0, 0.5, 1, 1.5, 2: halves away from zero
  EXPECT_EQ(position_links(3, 5), (Links{{0, 0}, {1, 1}, {1, 2}, {2, 3}, {2, 4}}));
  EXPECT_EQ(position_links(4, 1), (Links{{0, 0}}));
  EXPECT_EQ(position_links(1, 2), (Links{{0, 0}, {0, 1}}));
  EXPECT_TRUE(position_links(0, 3).empty());
  // on a reversal of 4 the baseline is the diagonal: no link is right
  const Links gold{{3, 0}, {2, 1}, {1, 2}, {0, 3}};
  EXPECT_DOUBLE_EQ(count_links(position_links(4, 4), gold).aer(), 1.0);
}

TEST(Alignment, CandidatesAreHeadsThenLayerMeansThenTheMeanAndTheBaseline) {
  const std::vector<AlignmentCandidate> c = alignment_candidates({2, 1});
  std::vector<std::string> names;
  for (const auto& x : c) names.push_back(x.name());
  EXPECT_EQ(names, (std::vector<std::string>{"layer 0 head 0", "layer 0 head 1", "layer 1 head 0", "layer 0 mean",
                                             "layer 1 mean", "all heads mean", "position baseline"}));
}

AlignmentCandidate scored(AlignmentCandidate::Kind kind, std::int64_t predicted_right, std::int64_t predicted,
                          std::int64_t gold = 10) {
  AlignmentCandidate c{kind, 0, 0, {}};
  c.counts.predicted = predicted;
  c.counts.sure = gold;
  c.counts.predicted_sure = c.counts.predicted_possible = predicted_right;
  return c;
}

TEST(Alignment, BestHeadHasTheLowestAerAmongHeadsOnly) {
  using Kind = AlignmentCandidate::Kind;
  const std::vector<AlignmentCandidate> c{scored(Kind::head, 5, 10),        scored(Kind::head, 0, 0, 0),  // AER NaN
                                          scored(Kind::head, 8, 10),        scored(Kind::head, 8, 10),    // equals
                                          scored(Kind::layer_mean, 10, 10), scored(Kind::all_mean, 10, 10),
                                          scored(Kind::position, 10, 10)};
  EXPECT_TRUE(std::isnan(c[1].counts.aer()));
  EXPECT_EQ(best_head(c), 2u);  // the first of equals; the means and the baseline are no heads
  EXPECT_NE(error_of([&] {
              best_head({scored(Kind::layer_mean, 1, 1), scored(Kind::head, 0, 0, 0)});
            }).find("no head has an alignment error rate"),
            std::string::npos);
}

// A sentence of n one-token words and its reversal, gold links (n - 1 - j, j), a source <eos> and
// a target <eos> row; one cross layer whose head 0 attends to the mirrored token, head 1 to the
// same position, head 2 (if any) spreads evenly.
AlignmentExample reversal(int n, std::int64_t heads = 2) {
  AlignmentExample e;
  e.name = "pair " + std::to_string(n);
  for (int i = 0; i < n; ++i) {
    e.source_words.push_back(std::to_string(i));
    e.target_words.push_back(std::to_string(n - 1 - i));
    e.gold.emplace_back(n - 1 - i, i);
    e.source_word_of.push_back(i);
    e.target_word_of.push_back(i);
  }
  e.source_word_of.push_back(-1);
  e.target_word_of.push_back(-1);
  const int Tq = n + 1, Tk = n + 1;
  std::vector<float> w(static_cast<std::size_t>(heads * Tq * Tk), 0.0f);
  for (int q = 0; q < Tq; ++q) {
    const int mirrored = q < n ? n - 1 - q : n;
    w[static_cast<std::size_t>((0 * Tq + q) * Tk + mirrored)] = 0.9f;
    w[static_cast<std::size_t>((0 * Tq + q) * Tk + n)] += 0.1f;
    w[static_cast<std::size_t>((1 * Tq + q) * Tk + q)] = 1.0f;
    for (int k = 0; k < Tk && heads > 2; ++k) w[static_cast<std::size_t>((2 * Tq + q) * Tk + k)] = 1.0f / Tk;
  }
  e.attention.layers.push_back({"decoder self", 0, from_vector(std::vector<float>(Tq * Tq, 0.0f), {1, Tq, Tq})});
  e.attention.layers.push_back({"cross", 0, from_vector(w, {heads, Tq, Tk})});
  return e;
}

TEST(Alignment, ScorerCountsEveryCandidateOverTheCorpus) {
  AlignmentScorer scorer;
  scorer.add(reversal(3));
  scorer.add(reversal(4));
  EXPECT_EQ(scorer.examples(), 2);
  EXPECT_EQ(scorer.gold_links(), 7);
  const std::vector<AlignmentCandidate>& c = scorer.candidates();
  ASSERT_EQ(c.size(), 5u);  // 2 heads, the layer's mean, the mean of all, the baseline
  EXPECT_EQ(c[0].counts.predicted, 7);
  EXPECT_EQ(c[0].counts.predicted_sure, 7);
  EXPECT_DOUBLE_EQ(c[0].counts.aer(), 0.0);
  // head 1 reads the diagonal: only the middle word of the odd sentence is right
  EXPECT_EQ(c[1].counts.predicted_sure, 1);
  EXPECT_DOUBLE_EQ(c[1].counts.aer(), 1 - 2.0 / 14);
  // the mean of 0.9 mirrored and 1.0 diagonal: the diagonal wins where they differ
  EXPECT_EQ(c[2].counts.predicted_sure, 1);
  EXPECT_EQ(c[4].kind, AlignmentCandidate::Kind::position);
  EXPECT_EQ(c[4].counts.predicted_sure, 1);  // the baseline is the diagonal on a reversal
  EXPECT_EQ(best_head(c), 0u);
  EXPECT_EQ(candidate_links(reversal(3), c[0]), (Links{{2, 0}, {1, 1}, {0, 2}}));
  EXPECT_EQ(candidate_links(reversal(3), c[4]), (Links{{0, 0}, {1, 1}, {2, 2}}));

  // an example with other heads is refused by name
  EXPECT_NE(error_of([&] {
              scorer.add(reversal(3, 3));
            }).find("alignment of pair 3: cross layers of (3) heads, where the examples before it had (2)"),
            std::string::npos);
}

TEST(Alignment, ExamplesThatDoNotFitTheirAttentionAreRefusedByName) {
  AlignmentExample e = reversal(3);
  e.source_word_of.pop_back();
  EXPECT_NE(error_of([&] {
              cross_layers(e);
            }).find("alignment of pair 3: cross layer 0 weights [2,4,4] are not (H, 4 query rows, 3 key tokens)"),
            std::string::npos);
  e = reversal(3);
  e.gold.emplace_back(3, 0);
  EXPECT_NE(error_of([&] { cross_layers(e); }).find("gold link (3, 0) outside its 3 source and 3 target words"),
            std::string::npos);
  e = reversal(3);
  e.target_word_of[0] = 5;
  EXPECT_NE(error_of([&] { cross_layers(e); }).find("a query row of target word 5, of 3 target words"),
            std::string::npos);
  e = reversal(3);
  e.attention.layers.pop_back();
  EXPECT_NE(error_of([&] { cross_layers(e); }).find("no cross-attention layer"), std::string::npos);
}

// Reversals of 2, 3, 4, ... words.
class Reversals : public AlignmentSource {
 public:
  std::int64_t prepare_alignment(const std::string& split, std::int64_t limit) override {
    split_ = split;
    return limit > 0 ? std::min<std::int64_t>(limit, 5) : 5;
  }
  AlignmentExample alignment_example(std::int64_t index) override { return reversal(static_cast<int>(index) + 2); }
  std::string split_;
};

TEST(Alignment, AlignExamplesRunsTheSplitAndKeepsTheExampleShown) {
  Reversals source;
  AlignmentOptions o;
  o.split = "val";
  o.limit = 3;
  o.example = 2;
  o.progress = false;
  const AlignmentResult r = align_examples(source, o);
  EXPECT_EQ(source.split_, "val");
  EXPECT_EQ(r.split, "val");
  EXPECT_EQ(r.best_chosen_on, "val");
  EXPECT_EQ(r.examples, 3);
  EXPECT_EQ(r.gold_links, 2 + 3 + 4);
  EXPECT_EQ(r.shown.name, "pair 4");
  EXPECT_EQ(r.candidates.at(r.best).name(), "layer 0 head 0");
  o.example = 3;
  EXPECT_NE(error_of([&] {
              align_examples(source, o);
            }).find("example 3 is out of range: the val split has 3 examples with gold alignments (0..2)"),
            std::string::npos);
}

TEST(Alignment, ReadingRowsAreThePredictingRowsOneLater) {
  EXPECT_EQ(reading_rows({0, 1, 1, 2, -1}), (std::vector<int>{-1, 0, 1, 1, 2}));
  EXPECT_TRUE(reading_rows({}).empty());
  EXPECT_EQ(alignment_rows_name(AlignmentRows::reads), "reads");
}

// Reversals whose head 0 looks one row late: row q attends where row q - 1 should, row 0 to <eos>.
class LateReversals : public Reversals {
 public:
  AlignmentExample alignment_example(std::int64_t index) override {
    AlignmentExample e = reversal(static_cast<int>(index) + 2);
    const Tensor on_time = e.attention.layers.back().weights.contiguous();  // (H, Tq, Tk)
    const std::int64_t H = on_time.size(0), Tq = on_time.size(1), Tk = on_time.size(2);
    std::vector<float> w(on_time.data<float>(), on_time.data<float>() + H * Tq * Tk);
    std::fill(w.begin(), w.begin() + Tk, 0.0f);
    w[static_cast<std::size_t>(Tk - 1)] = 1.0f;
    for (std::int64_t q = 1; q < Tq; ++q)
      std::copy(on_time.data<float>() + (q - 1) * Tk, on_time.data<float>() + q * Tk, w.begin() + q * Tk);
    e.attention.layers.back().weights = from_vector(w, {H, Tq, Tk});
    return e;
  }
};

TEST(Alignment, RowsThatReadTheTargetAlignAHeadThatLooksOneWordLate) {
  LateReversals source;
  AlignmentOptions o;
  o.progress = false;
  const AlignmentResult predicts = align_examples(source, o);
  EXPECT_EQ(predicts.rows, AlignmentRows::predicts);
  EXPECT_GT(predicts.candidates.at(0).counts.aer(), 0.9);
  o.rows = AlignmentRows::reads;
  const AlignmentResult reads = align_examples(source, o);
  EXPECT_EQ(reads.rows, AlignmentRows::reads);
  EXPECT_DOUBLE_EQ(reads.candidates.at(0).counts.aer(), 0.0);
  EXPECT_EQ(reads.candidates.at(reads.best).name(), "layer 0 head 0");
  EXPECT_EQ(reads.gold_links, predicts.gold_links);
}

}  // namespace
}  // namespace rune::analysis
