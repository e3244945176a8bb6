// Word alignment read from cross-attention, scored against gold links (`rune align`).
//
// Legend: H heads, Tq decoder query rows, Tk source key tokens, S source words, T target words.
#pragma once

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

}  // namespace rune::analysis
