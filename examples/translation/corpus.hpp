// Parallel corpora for the translation example: sentence pairs (tokens and vocabularies are
// text/tokens.hpp's), and two sources of pairs: the built-in
// number words (English -> French, numbers 0..999,999), with their splits (val, test, the rare
// classes' held-out halves) and training draws, and tab-separated files (source<TAB>target; a
// Tatoeba pair file's third column, the attribution, goes with `cut -f1,2`).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "autograd/random.hpp"
#include "text/tokens.hpp"

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

using text::join;
using text::Tokenization;
using text::tokenization_from_name;
using text::tokenize;
using text::Vocabulary;

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

// Classes of numbers with forms of their own, most of them seldom drawn by digit count: 2..999
// (the whole sentence is the form that ends the others: "quatre-vingts", "deux cents"), the
// multiples of 1,000, 10,000 and 100,000 (one draw in 2,000: a number that ends in "mille", no s
// on "cents" or "quatre-vingts" before it), and the numbers from 1,000 whose thousands part ends
// in 00 or 80 ("deux cent mille ...", "quatre-vingt mille ..."). They overlap: 200,000 is in four.
// 0 and 1 are in none, since held out neither could be learnt from the others: "zero" is a word
// of its own, and "one" starts no other sentence but before "hundred" or "thousand", where French
// drops it ("cent", "mille").
enum class RareClass { below_1000, multiple_of_1000, multiple_of_10000, multiple_of_100000, thousands_00_80 };
inline constexpr RareClass kRareClasses[] = {RareClass::below_1000, RareClass::multiple_of_1000,
                                             RareClass::multiple_of_10000, RareClass::multiple_of_100000,
                                             RareClass::thousands_00_80};
const char* rare_class_name(RareClass c);  // "below_1000", "multiple_of_1000", ... "thousands_00_80"
bool in_rare_class(std::int64_t n, RareClass c);

// Every split of the numbers 0..999,999: val and test by number_split; the held-out halves of the
// rare classes, the rare split; training, every other number. Each number of a rare class belongs
// to one stratum, its smallest class (200,000: multiple_of_100000; 80,001: thousands_00_80); half
// of each stratum (rounded down), its members ranked by a hash of (number, seed) as number_split
// does, is held out, so each class is held out by half. Fixed by the seed; the hold-out is
// independent of number_split, so a held-out number may also be in the val or test split.
class NumberSplits {
 public:
  NumberSplits(std::uint64_t seed, std::int64_t permille);
  Split split(std::int64_t n) const { return number_split(n, seed_, permille_); }
  bool held_out(std::int64_t n) const { return held_out_.at(static_cast<std::size_t>(n)); }
  bool trains_on(std::int64_t n) const { return split(n) == Split::train && !held_out(n); }
  // The held-out numbers, ascending: the rare split.
  const std::vector<std::int64_t>& held_out_numbers() const { return held_; }
  // The members of a rare class that training draws (trains_on), ascending.
  const std::vector<std::int64_t>& training(RareClass c) const { return training_[static_cast<std::size_t>(c)]; }

 private:
  std::uint64_t seed_;
  std::int64_t permille_;
  std::vector<bool> held_out_;  // by number
  std::vector<std::int64_t> held_;
  std::vector<std::vector<std::int64_t>> training_;  // by RareClass
};

// `count` numbers of a split: the number of digits uniform in 1..6, then the number uniform among
// those with that many digits, so small numbers (and their irregular words) are as common as large
// ones. Training numbers (Split::train: trains_on) come instead, with probability rare_fraction,
// from a rare class, each class as often, uniform among its training members: the multiples of
// 1,000 would otherwise be one draw in 2,000.
std::vector<std::int64_t> sample_numbers(Generator& g, std::int64_t count, Split split, const NumberSplits& splits,
                                         double rare_fraction);

}  // namespace rune::examples
