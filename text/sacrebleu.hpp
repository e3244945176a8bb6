// Corpus BLEU and chrF exactly as sacreBLEU 2.x computes them by default (Post, 2018: the scores a
// translation paper reports), on detokenized UTF-8 text, one line per segment.
//
// - BLEU: sacreBLEU's "13a" tokenizer (mteval-v13a) or none, word 1..4-grams clipped by the most
//   generous reference, summed over the corpus; brevity penalty from the closest reference length
//   (the shorter on ties); smoothing none, floor, add-k or exp (the default) as sacreBLEU defines
//   them; no effective order (sacreBLEU's corpus default), so a corpus without 4-grams scores 0.
// - chrF (Popović, 2015) and chrF++ (word_order = 2): character n-grams over Unicode code points
//   (whitespace removed unless asked to keep it), word n-grams after splitting punctuation off word
//   ends; per segment the reference with the best F; the corpus F-beta of the summed statistics,
//   averaging precision and recall over the orders that occur (sacreBLEU's default, not eps
//   smoothing).
//
// Whitespace is Python's (str.split: ASCII and Unicode spaces, line and paragraph separators) and
// lowercasing is Python's str.lower(), so the scores agree with sacreBLEU's on any language. Bytes
// that are not valid UTF-8 count as one character each and are never whitespace.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace rune::text {

// sacreBLEU's 13a tokenizer (sacrebleu/tokenizers/tokenizer_13a.py): drops "<skipped>", joins
// "-\n" hyphenations, unescapes &quot; &amp; &lt; &gt;, splits off punctuation and symbols, splits
// periods and commas off unless between digits and a dash after a digit, then leaves single spaces.
// Its patterns are ASCII classes, applied here to the UTF-8 bytes with the same result.
std::string tokenize_13a(const std::string& line);

// Python's str.lower() on UTF-8: Unicode's lowercase mapping (glibc's C.UTF-8 tables, which agree
// with Python's), U+0130 to "i" + U+0307, and a capital sigma that ends a word to final sigma.
// Throws std::runtime_error if the C.UTF-8 locale is missing.
std::string unicode_lower(const std::string& text);

struct BleuOptions {
  std::string smooth = "exp";          // none, floor, add-k or exp
  std::optional<double> smooth_value;  // floor and add-k; unset: sacreBLEU's 0.1 (floor), 1 (add-k)
  std::string tokenize = "13a";        // 13a or none
  bool lowercase = false;
};

struct BleuScore {
  double score = 0;                                // 0..100, as sacreBLEU prints
  std::array<double, 4> precisions{};              // percentages, after smoothing
  double bp = 0, ratio = 0;                        // brevity penalty; sys_len / ref_len (0 without a reference word)
  std::int64_t sys_len = 0, ref_len = 0;           // words of the hypotheses and of the closest references
  std::array<std::int64_t, 4> counts{}, totals{};  // matched and hypothesis n-grams, before add-k
  // "BLEU = 48.53 82.4/50.0/45.5/37.5 (BP = 0.943 ratio = 0.944 hyp_len = 17 ref_len = 18)"
  std::string text() const;
};

// The score from summed corpus statistics (sacreBLEU's BLEU.compute_bleu), for counts gathered
// elsewhere, e.g. over shards of a test set. Throws std::invalid_argument on an unknown method.
BleuScore bleu_from_statistics(const std::array<std::int64_t, 4>& counts, const std::array<std::int64_t, 4>& totals,
                               std::int64_t sys_len, std::int64_t ref_len, const BleuOptions& options = {});

// references[k] is the k-th reference stream (as sacrebleu.corpus_bleu(hyps, [refs1, refs2])), each
// with one line per hypothesis. Throws std::invalid_argument naming the stream whose length differs,
// when there is no stream, or on an unknown smoothing method or tokenizer.
BleuScore corpus_bleu_sacre(const std::vector<std::string>& hypotheses,
                            const std::vector<std::vector<std::string>>& references, const BleuOptions& options = {});

struct ChrfOptions {
  int char_order = 6, word_order = 0;  // word_order = 2 is chrF++
  double beta = 2;                     // recall weighs beta times as much as precision
  bool lowercase = false, whitespace = false;
};

// Corpus chrF (chrF++ with word_order = 2), 0..100, as sacrebleu.corpus_chrf. Throws
// std::invalid_argument as corpus_bleu_sacre does, and on negative or all-zero orders.
double corpus_chrf(const std::vector<std::string>& hypotheses, const std::vector<std::vector<std::string>>& references,
                   const ChrfOptions& options = {});

}  // namespace rune::text
