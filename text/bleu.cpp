#include "text/bleu.hpp"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdlib>
#include <map>
#include <sstream>
#include <stdexcept>

namespace rune::text {

Tokens split_words(const std::string& text) {
  Tokens out;
  std::istringstream in(text);
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

namespace {
using Counts = std::map<Tokens, long>;

Counts ngrams(const Tokens& t, std::size_t n) {
  Counts c;
  for (std::size_t i = 0; i + n <= t.size(); ++i)
    ++c[Tokens(t.begin() + static_cast<std::ptrdiff_t>(i), t.begin() + static_cast<std::ptrdiff_t>(i + n))];
  return c;
}
}  // namespace

double corpus_bleu(const std::vector<std::vector<Tokens>>& references, const std::vector<Tokens>& hypotheses) {
  if (references.size() != hypotheses.size())
    throw std::invalid_argument("corpus_bleu: " + std::to_string(hypotheses.size()) + " hypotheses but " +
                                std::to_string(references.size()) + " reference lists");
  long numerator[5] = {0}, denominator[5] = {0};
  long hyp_length = 0, ref_length = 0;
  for (std::size_t s = 0; s < hypotheses.size(); ++s) {
    const Tokens& hyp = hypotheses[s];
    const std::vector<Tokens>& refs = references[s];
    if (refs.empty()) throw std::invalid_argument("corpus_bleu: hypothesis " + std::to_string(s) + " has no reference");
    for (std::size_t n = 1; n <= 4; ++n) {
      // clipped counts: each hypothesis n-gram counts at most as often as in the richest reference
      const Counts counts = ngrams(hyp, n);
      Counts most;
      for (const Tokens& r : refs)
        for (const auto& [g, k] : ngrams(r, n)) most[g] = std::max(most[g], k);
      long clipped = 0, total = 0;
      for (const auto& [g, k] : counts) {
        const auto it = most.find(g);
        clipped += std::min(k, it == most.end() ? 0L : it->second);
        total += k;
      }
      numerator[n] += clipped;
      denominator[n] += std::max(1L, total);
    }
    const long h = static_cast<long>(hyp.size());
    long closest = static_cast<long>(refs.front().size());
    for (const Tokens& r : refs) {
      const long len = static_cast<long>(r.size());
      if (std::labs(len - h) < std::labs(closest - h) ||
          (std::labs(len - h) == std::labs(closest - h) && len < closest))
        closest = len;
    }
    hyp_length += h;
    ref_length += closest;
  }
  if (numerator[1] == 0) return 0.0;
  const double bp = hyp_length > ref_length ? 1.0
                    : hyp_length == 0
                        ? 0.0
                        : std::exp(1.0 - static_cast<double>(ref_length) / static_cast<double>(hyp_length));
  double log_sum = 0;
  for (int n = 1; n <= 4; ++n) {
    const double p =
        numerator[n] == 0 ? DBL_MIN : static_cast<double>(numerator[n]) / static_cast<double>(denominator[n]);
    log_sum += 0.25 * std::log(p);
  }
  return bp * std::exp(log_sum);
}

}  // namespace rune::text
