// Word alignment read from cross-attention, scored against gold links (`rune align`).
//
// Legend: H heads, Tq decoder query rows, Tk source key tokens, S source words, T target words.
//
// For one head, the word-level attention W (T, S) sums a query row's weights over the tokens of
// each source word, and averages those sums over the query rows of each target word (a row
// belongs to the word of the token it predicts); special tokens (word -1) are dropped on both
// sides. Each target word is then linked to its most-attended source word (argmax). The
// candidates are every head of every cross-attention layer, each layer's mean over its heads, the
// mean over all layers and heads, and a baseline that ignores attention: target word j linked to
// source word round(j (S - 1) / max(T - 1, 1)), the relative position. Scores are over the whole
// corpus (counts summed over examples, not averaged per sentence): precision, recall and the
// alignment error rate (AER) of Och & Ney 2003, with the gold links as both the sure and the
// possible ones.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "analysis/attention_maps.hpp"

namespace rune::analysis {

// One sentence pair with its gold word links and the model's attention on it.
struct AlignmentExample {
  std::string name;                                     // "Acts 2:4", or "pair 17"
  std::vector<std::string> source_words, target_words;  // the whitespace words of source and reference
  std::vector<std::pair<int, int>> gold;                // (source word, target word) links
  TokenAttention attention;         // the reference forced through the decoder (attention_maps.hpp): must hold the
                                    // "cross" layers, weights (H, Tq, Tk)
  std::vector<int> source_word_of;  // per key token of attention.source: its word, -1 for specials (<eos>)
  std::vector<int> target_word_of;  // per decoder query row: the word of the token that row PREDICTS
                                    // (row 0 reads <bos> and predicts the first token), -1 for <eos>
};

// Capability of a task (train/task.hpp): sentence pairs with gold word alignments.
class AlignmentSource {
 public:
  static constexpr const char* capability = "align words against gold alignments";
  virtual ~AlignmentSource() = default;
  // The split's examples that have gold links (at most `limit`, 0: all); their number.
  virtual std::int64_t prepare_alignment(const std::string& split, std::int64_t limit) = 0;
  virtual AlignmentExample alignment_example(std::int64_t index) = 0;
};

// (source word, target word) links, as AlignmentExample::gold.
using Links = std::vector<std::pair<int, int>>;
// Word-level attention, [target word][source word].
using WordMatrix = std::vector<std::vector<double>>;

// The word-level attention of one head: `weights` [query row][key token] (Tq x Tk), rows summed
// over the tokens of each source word and averaged over the rows of each target word; tokens and
// rows of word -1 are dropped. A target word without rows gets a row of zeros.
WordMatrix word_attention(const std::vector<std::vector<double>>& weights, const std::vector<int>& source_word_of,
                          const std::vector<int>& target_word_of, int source_words, int target_words);

// Each target word linked to its most-attended source word (the first of equals); a row whose
// maximum is 0 (a word the model did not read) links nothing.
Links argmax_links(const WordMatrix& m);

// Target word j linked to source word round(j (S - 1) / max(T - 1, 1)) (halves away from zero);
// nothing when S or T is 0.
Links position_links(int source_words, int target_words);

// Link counts of predicted links A against sure links S and possible links P (Och & Ney 2003,
// "A Systematic Comparison of Various Statistical Alignment Models": S within P), summed
// over a corpus with +=. Each set counts a link once however often it is listed.
struct AlignmentCounts {
  std::int64_t predicted = 0;           // |A|
  std::int64_t sure = 0;                // |S|
  std::int64_t predicted_sure = 0;      // |A ∩ S|
  std::int64_t predicted_possible = 0;  // |A ∩ P|
  AlignmentCounts& operator+=(const AlignmentCounts& o);
  // Och & Ney: precision |A ∩ P| / |A|, recall |A ∩ S| / |S|, AER 1 - (|A ∩ S| + |A ∩ P|) / (|A| + |S|);
  // NaN where the denominator is 0.
  double precision() const;
  double recall() const;
  double aer() const;
};
// The general case: P is taken as possible ∪ sure, so that S lies within P.
AlignmentCounts count_links(const Links& predicted, const Links& sure, const Links& possible);
// Gold links as both S and P: precision |A ∩ G| / |A|, recall |A ∩ G| / |G|, AER 1 - 2 |A ∩ G| / (|A| + |G|).
AlignmentCounts count_links(const Links& predicted, const Links& gold);

// A way of reading an alignment off an example, with its counts over the corpus.
struct AlignmentCandidate {
  enum class Kind { head, layer_mean, all_mean, position };
  Kind kind = Kind::head;
  std::int64_t layer = -1;  // the cross layer (head, layer_mean), else -1
  std::int64_t head = -1;   // the head (head), else -1
  AlignmentCounts counts;
  std::string name() const;  // "layer 1 head 2", "layer 1 mean", "all heads mean", "position baseline"
};

// The candidates for cross layers of these head counts, in the order of the reports: every head
// (layer by layer), each layer's mean, the mean of all, the position baseline.
std::vector<AlignmentCandidate> alignment_candidates(const std::vector<std::int64_t>& heads_per_layer);

// An example's cross layers in order (TokenAttention's layers of kind "cross"), each checked
// against the example: (H, Tq, Tk) with Tq = target_word_of.size(), Tk = source_word_of.size(),
// word indices within the word lists, gold links within them too. std::invalid_argument names the
// example and what is wrong.
std::vector<const TokenAttention::Layer*> cross_layers(const AlignmentExample& e);

// The word-level attention of an attention candidate (not the baseline) on an example; a mean
// candidate averages its heads' word-level matrices.
WordMatrix candidate_attention(const AlignmentExample& e, const AlignmentCandidate& c);
// The links a candidate reads off an example.
Links candidate_links(const AlignmentExample& e, const AlignmentCandidate& c);

// Counts every candidate over a corpus, one example at a time. The first example fixes the
// candidates (its cross layers and their heads); an example with other ones is refused by name.
class AlignmentScorer {
 public:
  void add(const AlignmentExample& e);
  const std::vector<AlignmentCandidate>& candidates() const { return candidates_; }
  std::int64_t examples() const { return examples_; }
  std::int64_t gold_links() const { return gold_links_; }

 private:
  std::vector<std::int64_t> heads_;  // per cross layer
  std::vector<AlignmentCandidate> candidates_;
  std::int64_t examples_ = 0, gold_links_ = 0;
};

// The index of the head candidate with the lowest AER (the first of equals; heads whose AER is
// NaN are passed over). Scores of one split may choose the head reported on another, as long as
// both lists come from the same model. std::invalid_argument when no head has an AER.
std::size_t best_head(const std::vector<AlignmentCandidate>& candidates);

// Which decoder rows stand for a target token: the row that predicts it (its output position, as
// AlignmentExample::target_word_of gives), or the row that reads it as input, one later (Chen et
// al. 2020's shift-att: a decoder often attends to the source of the word it produces next, and
// the row reading a word has already produced it).
enum class AlignmentRows { predicts, reads };
std::string alignment_rows_name(AlignmentRows rows);  // "predicts", "reads"

// target_word_of for `rows` = reads: row q takes the word of the token row q - 1 predicts (the
// token row q reads), row 0 (it reads <bos>) none.
std::vector<int> reading_rows(const std::vector<int>& predicting_rows);

struct AlignmentOptions {
  std::string split = "test";
  AlignmentRows rows = AlignmentRows::predicts;
  std::int64_t limit = 0;    // examples aligned (0: every one with gold links)
  std::int64_t example = 0;  // the example kept for the picture
  bool progress = true;      // progress lines on stderr
};

struct AlignmentResult {
  std::string split;
  std::int64_t examples = 0, gold_links = 0;
  std::vector<AlignmentCandidate> candidates;    // alignment_candidates() order
  std::size_t best = 0;                          // the best head, an index into candidates
  std::string best_chosen_on;                    // the split whose AER chose it
  AlignmentRows rows = AlignmentRows::predicts;  // the rows that stood for the target tokens
  AlignmentExample shown;                        // options.example, for the picture
};

// Aligns the split's examples of `source` under every candidate and chooses the best head on that
// split. std::invalid_argument when the split has no example with gold links, or options.example
// is not one of them.
AlignmentResult align_examples(AlignmentSource& source, const AlignmentOptions& options);

}  // namespace rune::analysis
