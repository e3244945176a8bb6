// Corpus BLEU-4 (Papineni et al., 2002) exactly as NLTK's corpus_bleu computes it with its default
// weights (0.25 each) and no smoothing: clipped n-gram counts summed over the corpus, a brevity
// penalty from the closest reference lengths (the shorter on ties), and, as NLTK's method0, an
// n-gram order with no match contributing log(DBL_MIN) rather than making the score undefined.
// Tokens are whitespace-separated words.
#pragma once

#include <string>
#include <vector>

namespace rune::text {

using Tokens = std::vector<std::string>;

Tokens split_words(const std::string& text);  // on runs of ASCII whitespace

// references[i] holds the reference translations of hypotheses[i] (one or more). Throws
// std::invalid_argument when the two lists differ in length or a hypothesis has no reference.
double corpus_bleu(const std::vector<std::vector<Tokens>>& references, const std::vector<Tokens>& hypotheses);

}  // namespace rune::text
