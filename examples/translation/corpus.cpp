#include "examples/translation/corpus.hpp"

#include <algorithm>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "examples/translation/number_words.hpp"

namespace rune::examples {

std::vector<Pair> read_tsv_pairs(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("corpus " + path + " cannot be read");
  const auto blank = [](const std::string& s) { return s.find_first_not_of(' ') == std::string::npos; };
  std::vector<Pair> pairs;
  std::int64_t line_no = 0;
  for (std::string line; std::getline(in, line);) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (blank(line)) continue;
    const std::string at = path + ":" + std::to_string(line_no) + ": ";
    const auto columns = std::count(line.begin(), line.end(), '\t') + 1;
    if (columns != 2)
      throw std::runtime_error(at + std::to_string(columns) + (columns == 1 ? " column" : " columns") +
                               ", expected 2 (source<TAB>target)" +
                               (columns > 2 ? "; `cut -f1,2` keeps the first two" : ""));
    const std::size_t tab = line.find('\t');
    Pair p{line.substr(0, tab), line.substr(tab + 1), line_no};
    if (blank(p.source) || blank(p.target))
      throw std::runtime_error(at + "an empty " +
                               (blank(p.source) && blank(p.target) ? "source and target"
                                : blank(p.source)                  ? "source"
                                                                   : "target") +
                               ", expected source<TAB>target with both sides non-empty");
    pairs.push_back(std::move(p));
  }
  if (pairs.empty()) throw std::runtime_error("corpus " + path + " holds no sentence pairs");
  return pairs;
}

std::string preview(const std::string& text) {
  constexpr std::size_t kWords = 5, kBytes = 40;
  const std::vector<std::string> words = tokenize(text, Tokenization::word);
  std::string s =
      join(std::vector<std::string>(words.begin(), words.begin() + std::min(words.size(), kWords)), Tokenization::word);
  bool more = words.size() > kWords;
  if (s.size() > kBytes) {
    std::size_t cut = kBytes;
    while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;  // not inside a code point
    s.resize(cut);
    more = true;
  }
  return more ? s + " ..." : s;
}

std::string long_pairs_warning(const std::vector<Pair>& pairs, Tokenization t, std::int64_t max_len,
                               const std::string& what) {
  return long_pairs_warning(
      pairs, [t](const std::string& text, bool) { return tokenize(text, t).size(); }, max_len, what);
}

std::string long_pairs_warning(const std::vector<Pair>& pairs,
                               const std::function<std::size_t(const std::string&, bool)>& count_tokens,
                               std::int64_t max_len, const std::string& what) {
  const auto fits = [&](const std::string& text, bool source) {
    return static_cast<std::int64_t>(count_tokens(text, source)) < max_len;  // with <eos>: at most max_len
  };
  std::size_t count = 0;
  const Pair* first = nullptr;
  for (const Pair& p : pairs)
    if (!fits(p.source, true) || !fits(p.target, false)) {
      if (!first) first = &p;
      ++count;
    }
  if (!first) return "";
  const std::string where = first->line > 0 ? "line " + std::to_string(first->line)
                            : !first->name.empty()
                                ? first->name
                                : "\"" + preview(fits(first->source, true) ? first->target : first->source) + "\"";
  return what + ": " + std::to_string(count) + " of " + std::to_string(pairs.size()) +
         " pairs are longer than data.max_len = " + std::to_string(max_len) +
         " tokens, <eos> included (first: " + where +
         ") and are cut in training and evaluation; raise data.max_len to keep them whole";
}

Pair number_pair(std::int64_t n) { return {english_words(n), french_words(n)}; }

namespace {
// splitmix64 of (n, seed): a fixed, well-mixed hash of every number
std::uint64_t number_hash(std::int64_t n, std::uint64_t seed) {
  std::uint64_t z = static_cast<std::uint64_t>(n) * 0x9E3779B97F4A7C15ULL + seed * 0xBF58476D1CE4E5B9ULL + 1;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// The smallest rare class n is in (its stratum), or -1 for none.
int rare_stratum(std::int64_t n) {
  for (const RareClass c : {RareClass::below_1000, RareClass::multiple_of_100000, RareClass::multiple_of_10000,
                            RareClass::multiple_of_1000, RareClass::thousands_00_80})
    if (in_rare_class(n, c)) return static_cast<int>(c);
  return -1;
}
}  // namespace

Split number_split(std::int64_t n, std::uint64_t seed, std::int64_t permille) {
  const auto bucket = static_cast<std::int64_t>(number_hash(n, seed) % 1000);
  return bucket < permille ? Split::test : bucket < 2 * permille ? Split::val : Split::train;
}

const char* rare_class_name(RareClass c) {
  switch (c) {
    case RareClass::below_1000:
      return "below_1000";
    case RareClass::multiple_of_1000:
      return "multiple_of_1000";
    case RareClass::multiple_of_10000:
      return "multiple_of_10000";
    case RareClass::multiple_of_100000:
      return "multiple_of_100000";
    case RareClass::thousands_00_80:
      return "thousands_00_80";
  }
  throw std::logic_error("rare_class_name: not a rare class");
}

bool in_rare_class(std::int64_t n, RareClass c) {
  switch (c) {
    case RareClass::below_1000:
      return n >= 2 && n < 1000;
    case RareClass::multiple_of_1000:
      return n >= 1000 && n % 1000 == 0;
    case RareClass::multiple_of_10000:
      return n >= 10000 && n % 10000 == 0;
    case RareClass::multiple_of_100000:
      return n >= 100000 && n % 100000 == 0;
    case RareClass::thousands_00_80:
      return n >= 1000 && (n / 1000 % 100 == 0 || n / 1000 % 100 == 80);
  }
  return false;
}

NumberSplits::NumberSplits(std::uint64_t seed, std::int64_t permille)
    : seed_(seed),
      permille_(permille),
      held_out_(static_cast<std::size_t>(kMaxNumberWords) + 1, false),
      training_(std::size(kRareClasses)) {
  // a key of its own for the hold-out, so that its hash is not number_split's
  const std::uint64_t key = seed ^ 0x5DEECE66DULL;
  std::vector<std::vector<std::pair<std::uint64_t, std::int64_t>>> strata(std::size(kRareClasses));
  for (std::int64_t n = 0; n <= kMaxNumberWords; ++n)
    if (const int s = rare_stratum(n); s >= 0) strata[static_cast<std::size_t>(s)].emplace_back(number_hash(n, key), n);
  for (auto& stratum : strata) {
    std::sort(stratum.begin(), stratum.end());
    for (std::size_t i = 0; i < stratum.size() / 2; ++i) held_out_[static_cast<std::size_t>(stratum[i].second)] = true;
  }
  for (std::int64_t n = 0; n <= kMaxNumberWords; ++n) {
    if (held_out(n)) held_.push_back(n);
    if (!trains_on(n)) continue;
    for (const RareClass c : kRareClasses)
      if (in_rare_class(n, c)) training_[static_cast<std::size_t>(c)].push_back(n);
  }
}

std::vector<std::int64_t> sample_numbers(Generator& g, std::int64_t count, Split split, const NumberSplits& splits,
                                         double rare_fraction) {
  static constexpr std::int64_t kPow10[] = {1, 10, 100, 1000, 10000, 100000, 1000000};
  std::vector<std::int64_t> out;
  while (static_cast<std::int64_t>(out.size()) < count) {
    if (split == Split::train && rare_fraction > 0 && g.uniform() < rare_fraction) {
      const std::vector<std::int64_t>& members = splits.training(kRareClasses[g.below(std::size(kRareClasses))]);
      if (!members.empty()) {  // empty only when val and test take most numbers (data.split_permille)
        out.push_back(members[g.below(members.size())]);
        continue;
      }
    }
    for (;;) {  // by digit count, until a number of the split
      const std::uint64_t d = 1 + g.below(6);
      const std::int64_t lo = d == 1 ? 0 : kPow10[d - 1], hi = kPow10[d];
      const std::int64_t n = lo + static_cast<std::int64_t>(g.below(static_cast<std::uint64_t>(hi - lo)));
      if (split == Split::train ? splits.trains_on(n) : splits.split(n) == split) {
        out.push_back(n);
        break;
      }
    }
  }
  return out;
}

}  // namespace rune::examples
