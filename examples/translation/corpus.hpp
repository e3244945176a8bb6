// Parallel corpora for the translation example: sentence pairs, tokenization (words, or UTF-8
// code points), vocabularies with <pad> <bos> <eos> <unk>, and two sources of pairs: the built-in
// number words (English -> French, numbers 0..999,999) and tab-separated files
// (source<TAB>target; a Tatoeba pair file's third column, the attribution, goes with `cut -f1,2`).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace rune::examples {

struct Pair {
  Pair() = default;
  Pair(std::string source_text, std::string target_text, std::int64_t line_number = 0)
      : source(std::move(source_text)), target(std::move(target_text)), line(line_number) {}
  std::string source, target;
  std::int64_t line = 0;                       // its line in a TSV file (from 1); 0 for generated pairs
  std::string name;                            // "Acts 2:4" for a Bible verse; empty otherwise
  std::vector<std::pair<int, int>> alignment;  // gold (source word, target word) links, if known
};

// Subwords are SentencePiece pieces (text/subword.hpp), one model per language; tokenize() and
// join() below handle words and characters only.
enum class Tokenization { word, character, subword };
Tokenization tokenization_from_name(const std::string& name);  // "word", "char" or "sentencepiece"

// Words split on ASCII whitespace; characters are UTF-8 code points (é and ç are one token; a space
// is a token of its own). join() undoes it.
std::vector<std::string> tokenize(const std::string& text, Tokenization t);
std::string join(const std::vector<std::string>& tokens, Tokenization t);

class Vocabulary {
 public:
  static constexpr std::int64_t pad = 0, bos = 1, eos = 2, unk = 3;
  Vocabulary();  // only the four specials
  // Tokens seen at least min_freq times in `texts`, in order of decreasing frequency (ties by token).
  static Vocabulary build(const std::vector<std::vector<std::string>>& texts, std::int64_t min_freq);
  explicit Vocabulary(std::vector<std::string> tokens);  // as stored in a checkpoint; specials first
  std::int64_t id(const std::string& token) const;       // unk if absent
  const std::string& token(std::int64_t id) const;
  std::int64_t size() const { return static_cast<std::int64_t>(tokens_.size()); }
  const std::vector<std::string>& tokens() const { return tokens_; }

 private:
  std::vector<std::string> tokens_;
  std::map<std::string, std::int64_t> ids_;
};

// Pairs of a tab-separated file. A blank line (empty, or spaces only) is skipped, wherever it is;
// every other line is exactly source<TAB>target, each side holding more than spaces. Anything
// else (no tab, a third column, an empty side) is an error naming the file and line:
// "data/x.tsv:17: 3 columns, expected 2 (source<TAB>target)".
std::vector<Pair> read_tsv_pairs(const std::string& path);

// The start of a text for a message: its first five words, then " ..." if there are more, and at
// most about 40 bytes (cut at a UTF-8 code point).
std::string preview(const std::string& text);

// One warning when some pairs have a side that, with <eos>, is longer than max_len tokens (encoding
// cuts them): "<what>: 12 of 5000 pairs are longer than data.max_len = 64 tokens, <eos> included
// (first: line 17) and are cut ...", naming the first such pair by its line, or by its
// start when it has none. "" when every pair fits.
std::string long_pairs_warning(const std::vector<Pair>& pairs, Tokenization t, std::int64_t max_len,
                               const std::string& what);
// The same with the tokens counted by `count(text, source)`.
std::string long_pairs_warning(const std::vector<Pair>& pairs,
                               const std::function<std::size_t(const std::string&, bool)>& count, std::int64_t max_len,
                               const std::string& what);

// English and French words for n (number_words.hpp).
Pair number_pair(std::int64_t n);

// Which split a number belongs to: about test_permille / 1000 of all numbers are test, as many
// validation, the rest train; fixed by the seed, so the splits are disjoint by number.
enum class Split { train, val, test };
Split number_split(std::int64_t n, std::uint64_t seed, std::int64_t permille);

}  // namespace rune::examples
