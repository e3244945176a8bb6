#include "text/sacrebleu.hpp"

#include <locale.h>
#include <wctype.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string_view>

#include "text/utf8.hpp"

namespace rune::text {
namespace {

// ---------------------------------------------------------------- UTF-8 and Python's whitespace

constexpr char32_t kInvalid = 0x80000000;  // marks a byte that starts no valid UTF-8 sequence

bool continuation(unsigned char b) { return (b & 0xC0) == 0x80; }

// The code point starting at s[i] and its length in bytes; a byte that starts no well-formed
// sequence (as Python's strict decoder defines it) is kInvalid | byte, one byte long.
char32_t decode(std::string_view s, std::size_t i, std::size_t& length) {
  const auto at = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char b = at(i);
  length = 1;
  if (b < 0x80) return b;
  std::size_t n = 0;
  char32_t cp = 0;
  unsigned char lo = 0x80, hi = 0xBF;  // the allowed range of the second byte
  if (b >= 0xC2 && b <= 0xDF) {
    n = 2, cp = b & 0x1F;
  } else if (b >= 0xE0 && b <= 0xEF) {
    n = 3, cp = b & 0x0F;
    if (b == 0xE0) lo = 0xA0;  // no overlong forms
    if (b == 0xED) hi = 0x9F;  // no surrogates
  } else if (b >= 0xF0 && b <= 0xF4) {
    n = 4, cp = b & 0x07;
    if (b == 0xF0) lo = 0x90;
    if (b == 0xF4) hi = 0x8F;  // nothing past U+10FFFF
  } else {
    return kInvalid | b;
  }
  if (i + n > s.size() || at(i + 1) < lo || at(i + 1) > hi) return kInvalid | b;
  for (std::size_t k = 1; k < n; ++k) {
    if (!continuation(at(i + k))) return kInvalid | b;
    cp = (cp << 6) | (at(i + k) & 0x3F);
  }
  length = n;
  return cp;
}

void encode(char32_t cp, std::string& out) {
  if (cp & kInvalid)
    out += static_cast<char>(cp & 0xFF);  // a byte that was not UTF-8 goes back as it was
  else
    append_utf8(out, cp);
}

// Python's str.isspace(): what str.split() and str.rstrip() take as whitespace
bool is_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

// Words of a line as Python's str.split() finds them, joined by single spaces into `text`, so that
// an n-gram of words is the substring from its first word's start to its last word's end.
struct Words {
  std::string text;
  std::vector<std::size_t> begin, end;  // byte offsets of each word in text

  std::string_view ngram(std::size_t i, std::size_t n) const {
    return std::string_view(text).substr(begin[i], end[i + n - 1] - begin[i]);
  }
  std::size_t size() const { return begin.size(); }
};

template <class Visit>
void for_each_word(std::string_view s, Visit visit) {
  std::size_t start = std::string_view::npos;
  for (std::size_t i = 0, len = 0; i < s.size(); i += len) {
    const bool space = is_space(decode(s, i, len));
    if (space && start != std::string_view::npos) {
      visit(s.substr(start, i - start));
      start = std::string_view::npos;
    } else if (!space && start == std::string_view::npos) {
      start = i;
    }
  }
  if (start != std::string_view::npos) visit(s.substr(start));
}

void add_word(Words& w, std::string_view word) {
  if (!w.text.empty()) w.text += ' ';
  w.begin.push_back(w.text.size());
  w.text += word;
  w.end.push_back(w.text.size());
}

Words split_words(std::string_view s) {
  Words w;
  w.text.reserve(s.size());
  for_each_word(s, [&](std::string_view word) { add_word(w, word); });
  return w;
}

std::string join_words(std::string_view s) { return split_words(s).text; }

// str.rstrip(): the length without trailing whitespace
std::size_t rstripped_length(std::string_view s) {
  std::size_t keep = 0;
  for (std::size_t i = 0, len = 0; i < s.size(); i += len)
    if (!is_space(decode(s, i, len))) keep = i + len;
  return keep;
}

// str.replace(from, to): every non-overlapping occurrence, left to right
void replace_all(std::string& s, std::string_view from, std::string_view to) {
  std::string out;
  std::size_t done = 0;
  for (std::size_t at = s.find(from); at != std::string::npos; at = s.find(from, done)) {
    out.append(s, done, at - done);
    out += to;
    done = at + from.size();
  }
  if (done == 0) return;
  out.append(s, done, std::string::npos);
  s.swap(out);
}

// ---------------------------------------------------------------- 13a

// [\{-\~\[-\` -\&\(-\+\:-\@\/]: ASCII punctuation and symbols except ' , - . (and the space)
bool is_13a_symbol(unsigned char c) {
  return (c >= 0x20 && c <= 0x26) || (c >= 0x28 && c <= 0x2B) || c == 0x2F || (c >= 0x3A && c <= 0x40) ||
         (c >= 0x5B && c <= 0x60) || (c >= 0x7B && c <= 0x7E);
}
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_period_or_comma(char c) { return c == '.' || c == ','; }

// re.sub of a two-character pattern: matches taken leftmost first and never overlapping, each
// written by `write(first, second, out)`. Every class but [^0-9] is ASCII, so matching a UTF-8
// byte where Python matches a code point changes nothing: the bytes of a multi-byte character
// are never digits, periods, commas or dashes, and [^0-9] only copies what it matches.
template <class Match, class Write>
std::string substitute_pairs(const std::string& s, Match match, Write write) {
  std::string out;
  out.reserve(s.size() + s.size() / 4);
  std::size_t i = 0;
  while (i < s.size()) {
    if (i + 1 < s.size() && match(s[i], s[i + 1])) {
      write(s[i], s[i + 1], out);
      i += 2;
    } else {
      out += s[i++];
    }
  }
  return out;
}

// ---------------------------------------------------------------- lowercasing

locale_t c_utf8() {
  static const locale_t locale = newlocale(LC_CTYPE_MASK, "C.UTF-8", static_cast<locale_t>(nullptr));
  if (locale == static_cast<locale_t>(nullptr))
    throw std::runtime_error("unicode_lower: the C.UTF-8 locale is missing (its tables map Unicode case)");
  return locale;
}

bool is_cased(char32_t c, locale_t locale) {
  if (c & kInvalid) return false;
  const auto w = static_cast<wint_t>(c);
  return towlower_l(w, locale) != w || towupper_l(w, locale) != w || iswlower_l(w, locale) || iswupper_l(w, locale);
}

// Unicode's Case_Ignorable (marks, modifier letters, format characters, apostrophes, periods,
// colons) as Python 3.11 has it, over the blocks of the cased alphabets: Latin, Greek, Cyrillic,
// Armenian, Georgian, their combining marks, general punctuation and the half- and full-width forms.
bool is_case_ignorable(char32_t c) {
  static constexpr char32_t kRanges[][2] = {
      {0x0027, 0x0027}, {0x002E, 0x002E}, {0x003A, 0x003A}, {0x005E, 0x005E}, {0x0060, 0x0060}, {0x00A8, 0x00A8},
      {0x00AD, 0x00AD}, {0x00AF, 0x00AF}, {0x00B4, 0x00B4}, {0x00B7, 0x00B8}, {0x02B0, 0x036F}, {0x0374, 0x0375},
      {0x037A, 0x037A}, {0x0384, 0x0385}, {0x0387, 0x0387}, {0x0483, 0x0489}, {0x0559, 0x0559}, {0x055F, 0x055F},
      {0x10FC, 0x10FC}, {0x1D2C, 0x1D6A}, {0x1D78, 0x1D78}, {0x1D9B, 0x1DFF}, {0x1FBD, 0x1FBD}, {0x1FBF, 0x1FC1},
      {0x1FCD, 0x1FCF}, {0x1FDD, 0x1FDF}, {0x1FED, 0x1FEF}, {0x1FFD, 0x1FFE}, {0x200B, 0x200F}, {0x2018, 0x2019},
      {0x2024, 0x2024}, {0x2027, 0x2027}, {0x202A, 0x202E}, {0x2060, 0x2064}, {0x2066, 0x206F}, {0x2071, 0x2071},
      {0x207F, 0x207F}, {0x2090, 0x209C}, {0x20D0, 0x20F0}, {0x2C7C, 0x2C7D}, {0x2CEF, 0x2CF1}, {0x2D6F, 0x2D6F},
      {0x2D7F, 0x2D7F}, {0x2DE0, 0x2DFF}, {0xA66F, 0xA672}, {0xA674, 0xA67D}, {0xA67F, 0xA67F}, {0xA69C, 0xA69F},
      {0xA6F0, 0xA6F1}, {0xA700, 0xA721}, {0xA770, 0xA770}, {0xA788, 0xA78A}, {0xA7F2, 0xA7F4}, {0xA7F8, 0xA7F9},
      {0xAB5B, 0xAB5F}, {0xAB69, 0xAB6B}, {0xFE00, 0xFE0F}, {0xFE13, 0xFE13}, {0xFE20, 0xFE2F}, {0xFE52, 0xFE52},
      {0xFE55, 0xFE55}, {0xFEFF, 0xFEFF}, {0xFF07, 0xFF07}, {0xFF0E, 0xFF0E}, {0xFF1A, 0xFF1A}, {0xFF3E, 0xFF3E},
      {0xFF40, 0xFF40}, {0xFF70, 0xFF70}, {0xFF9E, 0xFF9F}, {0xFFE3, 0xFFE3}};
  for (const auto& r : kRanges)
    if (c >= r[0] && c <= r[1]) return true;
  return false;
}

// Unicode's Final_Sigma context, as Python's lower() tests it: a cased letter before the sigma and
// none after it, looking past case-ignorable characters on both sides.
bool ends_word(const std::vector<char32_t>& cps, std::size_t i, locale_t locale) {
  std::size_t j = i;
  while (j > 0 && is_case_ignorable(cps[j - 1])) --j;
  if (j == 0 || !is_cased(cps[j - 1], locale)) return false;
  for (std::size_t k = i + 1; k < cps.size(); ++k)
    if (!is_case_ignorable(cps[k])) return !is_cased(cps[k], locale);
  return true;
}

// ---------------------------------------------------------------- n-gram counts

// Counts of n-grams, each a view into text that outlives the table: open addressing with linear
// probing, and clear() empties only the slots used, so one table serves every segment without
// allocating (std::unordered_map spent most of the time in its node allocations).
class Counts {
 public:
  void clear() {
    for (const std::size_t i : used_) slots_[i] = Slot{};
    used_.clear();
    total_ = 0;
  }
  void add(std::string_view g) {
    ++slot(g).count;
    ++total_;
  }
  void raise(std::string_view g, std::int64_t k) {  // count = max(count, k), for k >= 1
    std::int64_t& c = slot(g).count;
    total_ += std::max<std::int64_t>(0, k - c);
    c = std::max(c, k);
  }
  std::int64_t count(std::string_view g) const {
    if (slots_.empty()) return 0;
    for (std::size_t i = hash(g) & (slots_.size() - 1);; i = (i + 1) & (slots_.size() - 1)) {
      if (slots_[i].count == 0) return 0;
      if (slots_[i].key == g) return slots_[i].count;
    }
  }
  template <class Visit>
  void for_each(Visit visit) const {  // visit(n-gram, count) for each distinct n-gram
    for (const std::size_t i : used_) visit(slots_[i].key, slots_[i].count);
  }
  std::size_t distinct() const { return used_.size(); }
  std::int64_t total() const { return total_; }  // the sum of the counts

 private:
  struct Slot {
    std::string_view key;
    std::int64_t count = 0;  // 0: empty
  };

  static std::size_t hash(std::string_view g) {  // FNV-1a
    std::uint64_t h = 14695981039346656037ull;
    for (const char c : g) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
    return static_cast<std::size_t>(h ^ (h >> 29));
  }

  Slot& slot(std::string_view g) {
    if (2 * (used_.size() + 1) > slots_.size()) grow();
    std::size_t i = hash(g) & (slots_.size() - 1);
    for (; slots_[i].count != 0; i = (i + 1) & (slots_.size() - 1))
      if (slots_[i].key == g) return slots_[i];
    slots_[i].key = g;
    used_.push_back(i);
    return slots_[i];
  }

  void grow() {
    std::vector<Slot> old(std::max<std::size_t>(64, 2 * slots_.size()));
    old.swap(slots_);
    std::vector<std::size_t> was;
    was.swap(used_);
    for (const std::size_t j : was) {
      std::size_t i = hash(old[j].key) & (slots_.size() - 1);
      while (slots_[i].count != 0) i = (i + 1) & (slots_.size() - 1);
      slots_[i] = old[j];
      used_.push_back(i);
    }
  }

  std::vector<Slot> slots_;
  std::vector<std::size_t> used_;
  std::int64_t total_ = 0;
};

// sum over n-grams of min(count in a, count in b): the matches of two multisets
std::int64_t matches(const Counts& a, const Counts& b) {
  const Counts& small = a.distinct() <= b.distinct() ? a : b;
  const Counts& large = a.distinct() <= b.distinct() ? b : a;
  std::int64_t sum = 0;
  small.for_each([&](std::string_view g, std::int64_t k) { sum += std::min(k, large.count(g)); });
  return sum;
}

// every reference stream has a line per hypothesis
void check_streams(const char* who, std::size_t hypotheses, const std::vector<std::vector<std::string>>& references) {
  if (references.empty()) throw std::invalid_argument(std::string(who) + ": no reference stream");
  for (std::size_t k = 0; k < references.size(); ++k)
    if (references[k].size() != hypotheses)
      throw std::invalid_argument(std::string(who) + ": reference stream " + std::to_string(k + 1) + " of " +
                                  std::to_string(references.size()) + " has " + std::to_string(references[k].size()) +
                                  " lines, the hypotheses " + std::to_string(hypotheses) +
                                  " (one line per hypothesis in every stream)");
}

constexpr int kBleuOrder = 4;

void check_smoothing(const std::string& method) {
  if (method != "none" && method != "floor" && method != "add-k" && method != "exp")
    throw std::invalid_argument("BLEU smoothing '" + method + "': expected none, floor, add-k or exp");
}

// sacreBLEU's BLEU._get_closest_ref_len: the closest length, the shorter on ties
std::int64_t closest_length(std::int64_t hyp, const std::vector<Words>& refs) {
  std::int64_t best = -1, best_diff = -1;
  for (const Words& r : refs) {
    const auto len = static_cast<std::int64_t>(r.size());
    const std::int64_t diff = std::abs(hyp - len);
    if (best_diff == -1 || diff < best_diff || (diff == best_diff && len < best)) best = len, best_diff = diff;
  }
  return best;
}

// chrF's statistics of one segment against one reference: per order, hypothesis n-grams (0 when
// the reference has none of that order), reference n-grams, matches
struct ChrfStats {
  std::vector<std::int64_t> hyp, ref, match;
  explicit ChrfStats(std::size_t orders) : hyp(orders), ref(orders), match(orders) {}
};

// F-beta of precision and recall averaged over the orders both sides have (sacreBLEU's default,
// CHRF._compute_f_score with eps_smoothing off), in 0..100
double chrf_score(const ChrfStats& s, double beta) {
  const double factor = beta * beta;
  double precision = 0, recall = 0;
  int orders = 0;
  for (std::size_t i = 0; i < s.hyp.size(); ++i) {
    if (s.hyp[i] == 0 || s.ref[i] == 0) continue;
    precision += static_cast<double>(s.match[i]) / static_cast<double>(s.hyp[i]);
    recall += static_cast<double>(s.match[i]) / static_cast<double>(s.ref[i]);
    ++orders;
  }
  if (orders == 0) return 0;
  precision /= orders;
  recall /= orders;
  const double denominator = factor * precision + recall;
  if (precision + recall == 0 || denominator == 0) return 0;  // the latter: beta 0, no recall (Python raises)
  const double f = (1 + factor) * precision * recall / denominator;
  return 100 * f;
}

// The n-grams chrF counts in one (lowercased) line, per order: code-point n-grams of characters,
// then word n-grams. The counts point into the buffers, so each assign() invalidates the last
// line's; the buffers and tables are reused from line to line.
class ChrfNgrams {
 public:
  explicit ChrfNgrams(const ChrfOptions& o)
      : char_order_(static_cast<std::size_t>(o.char_order)),
        word_order_(static_cast<std::size_t>(o.word_order)),
        whitespace_(o.whitespace),
        counts_(char_order_ + word_order_) {}

  void assign(const std::string& line) {
    chars_.clear();
    if (whitespace_) {
      chars_ = line;
    } else {
      for_each_word(line, [&](std::string_view w) { chars_ += w; });
    }
    offsets_.clear();
    for (std::size_t i = 0, len = 0; i < chars_.size(); i += len) {
      offsets_.push_back(i);
      decode(chars_, i, len);
    }
    offsets_.push_back(chars_.size());
    const std::string_view chars(chars_);
    for (std::size_t n = 1; n <= char_order_; ++n) {
      Counts& c = counts_[n - 1];
      c.clear();
      for (std::size_t i = 0; i + n < offsets_.size(); ++i)
        c.add(chars.substr(offsets_[i], offsets_[i + n] - offsets_[i]));
    }
    if (word_order_ == 0) return;
    split_punctuation(line);
    for (std::size_t n = 1; n <= word_order_; ++n) {
      Counts& c = counts_[char_order_ + n - 1];
      c.clear();
      for (std::size_t i = 0; i + n <= words_.size(); ++i) c.add(words_.ngram(i, n));
    }
  }

  const Counts& counts(std::size_t order) const { return counts_[order]; }

 private:
  // CHRF._remove_punctuation: a word of two or more characters loses one punctuation mark, its
  // last character if that is one, else its first (so "(hi)" gives "(hi" and ")"). The marks are
  // ASCII, so a byte test is a character test.
  void split_punctuation(const std::string& line) {
    static constexpr std::string_view kPunctuation = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";
    const auto punct = [](char c) { return kPunctuation.find(c) != std::string_view::npos; };
    words_.text.clear();
    words_.begin.clear();
    words_.end.clear();
    for_each_word(line, [&](std::string_view word) {
      if (word.size() > 1 && punct(word.back())) {
        add_word(words_, word.substr(0, word.size() - 1));
        add_word(words_, word.substr(word.size() - 1));
      } else if (word.size() > 1 && punct(word.front())) {
        add_word(words_, word.substr(0, 1));
        add_word(words_, word.substr(1));
      } else {
        add_word(words_, word);
      }
    });
  }

  std::size_t char_order_, word_order_;
  bool whitespace_;
  std::string chars_;
  std::vector<std::size_t> offsets_;  // byte offset of each code point of chars_, and its end
  Words words_;
  std::vector<Counts> counts_;
};

}  // namespace

// ---------------------------------------------------------------- public

std::string tokenize_13a(const std::string& input) {
  std::string line = input;
  replace_all(line, "<skipped>", "");
  replace_all(line, "-\n", "");
  replace_all(line, "\n", " ");
  if (line.find('&') != std::string::npos) {
    replace_all(line, "&quot;", "\"");
    replace_all(line, "&amp;", "&");
    replace_all(line, "&lt;", "<");
    replace_all(line, "&gt;", ">");
  }
  // ([\{-\~\[-\` -\&\(-\+\:-\@\/]) -> " \1 ", on the line padded with a space on each side
  std::string s;
  s.reserve(line.size() + line.size() / 2 + 2);
  s += ' ';
  for (const char c : line) {
    if (is_13a_symbol(static_cast<unsigned char>(c))) {
      s += ' ', s += c, s += ' ';
    } else {
      s += c;
    }
  }
  s += ' ';
  // ([^0-9])([\.,]) -> "\1 \2 ": a period or comma after a non-digit
  s = substitute_pairs(
      s, [](char a, char b) { return !is_digit(a) && is_period_or_comma(b); },
      [](char a, char b, std::string& out) { out += a, out += ' ', out += b, out += ' '; });
  // ([\.,])([^0-9]) -> " \1 \2": a period or comma before a non-digit
  s = substitute_pairs(
      s, [](char a, char b) { return is_period_or_comma(a) && !is_digit(b); },
      [](char a, char b, std::string& out) { out += ' ', out += a, out += ' ', out += b; });
  // ([0-9])(-) -> "\1 \2 ": a dash after a digit
  s = substitute_pairs(
      s, [](char a, char b) { return is_digit(a) && b == '-'; },
      [](char a, char b, std::string& out) { out += a, out += ' ', out += b, out += ' '; });
  return join_words(s);
}

std::string unicode_lower(const std::string& text) {
  std::string out;
  out.reserve(text.size() + 2);
  if (std::all_of(text.begin(), text.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; })) {
    for (const char c : text) out += (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
    return out;
  }
  const locale_t locale = c_utf8();
  std::vector<char32_t> cps;
  cps.reserve(text.size());
  for (std::size_t i = 0, len = 0; i < text.size(); i += len) cps.push_back(decode(text, i, len));
  for (std::size_t i = 0; i < cps.size(); ++i) {
    const char32_t c = cps[i];
    if (c & kInvalid) {
      encode(c, out);
    } else if (c == 0x130) {  // İ: the one full lowercase mapping of two code points
      out += 'i';
      encode(0x307, out);
    } else if (c == 0x3A3) {  // Σ: ς at the end of a word, σ elsewhere
      encode(ends_word(cps, i, locale) ? 0x3C2 : 0x3C3, out);
    } else {
      encode(static_cast<char32_t>(towlower_l(static_cast<wint_t>(c), locale)), out);
    }
  }
  return out;
}

std::string BleuScore::text() const {
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "BLEU = %.2f %.1f/%.1f/%.1f/%.1f (BP = %.3f ratio = %.3f hyp_len = %lld ref_len = %lld)", score,
                precisions[0], precisions[1], precisions[2], precisions[3], bp, ratio, static_cast<long long>(sys_len),
                static_cast<long long>(ref_len));
  return buf;
}

BleuScore bleu_from_statistics(const std::array<std::int64_t, 4>& counts, const std::array<std::int64_t, 4>& totals,
                               std::int64_t sys_len, std::int64_t ref_len, const BleuOptions& options) {
  check_smoothing(options.smooth);
  const std::string& method = options.smooth;
  const double k = options.smooth_value.value_or(method == "floor" ? 0.1 : 1.0);

  BleuScore s;
  s.counts = counts;
  s.totals = totals;
  s.sys_len = sys_len;
  s.ref_len = ref_len;
  s.ratio = ref_len > 0 ? static_cast<double>(sys_len) / static_cast<double>(ref_len) : 0.0;
  s.bp = 1.0;
  if (sys_len < ref_len)
    s.bp = sys_len > 0 ? std::exp(1.0 - static_cast<double>(ref_len) / static_cast<double>(sys_len)) : 0.0;
  // no match of any order scores 0 whatever the smoothing (sacreBLEU #141)
  if (std::all_of(counts.begin(), counts.end(), [](std::int64_t c) { return c == 0; })) return s;

  double exp_divisor = 1;  // exp (NIST's smoothing): the n-th order without a match counts 1 / 2^n
  for (int n = 0; n < kBleuOrder; ++n) {
    double correct = static_cast<double>(counts[n]), all = static_cast<double>(totals[n]);
    if (method == "add-k" && n > 0) correct += k, all += k;
    if (all == 0) break;  // an order the hypotheses are too short for: its precision stays 0
    if (correct == 0) {
      if (method == "exp") {
        exp_divisor *= 2;
        s.precisions[n] = 100.0 / (exp_divisor * all);
      } else if (method == "floor") {
        s.precisions[n] = 100.0 * k / all;
      }
    } else {
      s.precisions[n] = 100.0 * correct / all;
    }
  }
  // the geometric mean, a zero precision entering as log = -9999999999 (sacreBLEU's my_log)
  double log_sum = 0;
  for (const double p : s.precisions) log_sum += p == 0 ? -9999999999.0 : std::log(p);
  s.score = s.bp * std::exp(log_sum / kBleuOrder);
  return s;
}

BleuScore corpus_bleu_sacre(const std::vector<std::string>& hypotheses,
                            const std::vector<std::vector<std::string>>& references, const BleuOptions& options) {
  check_streams("corpus_bleu_sacre", hypotheses.size(), references);
  if (options.tokenize != "13a" && options.tokenize != "none")
    throw std::invalid_argument("BLEU tokenizer '" + options.tokenize + "': expected 13a or none");
  check_smoothing(options.smooth);

  // BLEU._preprocess_segment: lowercase, strip trailing whitespace, tokenize; then split into words
  const auto words = [&](const std::string& line) {
    std::string s = options.lowercase ? unicode_lower(line) : line;
    s.resize(rstripped_length(s));
    return split_words(options.tokenize == "13a" ? tokenize_13a(s) : s);
  };
  std::array<std::int64_t, 4> counts{}, totals{};
  std::int64_t sys_len = 0, ref_len = 0;
  std::vector<Words> refs(references.size());
  Counts most, ref_counts, hyp_counts;  // reused across segments
  for (std::size_t line = 0; line < hypotheses.size(); ++line) {
    const Words hyp = words(hypotheses[line]);
    for (std::size_t k = 0; k < references.size(); ++k) refs[k] = words(references[k][line]);
    for (std::size_t n = 1; n <= kBleuOrder; ++n) {
      // clipped matches: each hypothesis n-gram counts at most as often as in the richest reference
      most.clear();
      for (const Words& r : refs) {
        ref_counts.clear();
        for (std::size_t i = 0; i + n <= r.size(); ++i) ref_counts.add(r.ngram(i, n));
        ref_counts.for_each([&](std::string_view g, std::int64_t c) { most.raise(g, c); });
      }
      hyp_counts.clear();
      for (std::size_t i = 0; i + n <= hyp.size(); ++i) hyp_counts.add(hyp.ngram(i, n));
      totals[n - 1] += hyp_counts.total();
      counts[n - 1] += matches(hyp_counts, most);
    }
    const auto h = static_cast<std::int64_t>(hyp.size());
    sys_len += h;
    ref_len += closest_length(h, refs);
  }
  return bleu_from_statistics(counts, totals, sys_len, ref_len, options);
}

double corpus_chrf(const std::vector<std::string>& hypotheses, const std::vector<std::vector<std::string>>& references,
                   const ChrfOptions& options) {
  check_streams("corpus_chrf", hypotheses.size(), references);
  if (options.char_order < 0 || options.word_order < 0 || options.char_order + options.word_order == 0)
    throw std::invalid_argument("corpus_chrf: char_order " + std::to_string(options.char_order) + " and word_order " +
                                std::to_string(options.word_order) + ": both >= 0 and not both 0");
  const auto orders = static_cast<std::size_t>(options.char_order + options.word_order);
  const auto prepare = [&](const std::string& line) { return options.lowercase ? unicode_lower(line) : line; };

  ChrfStats corpus(orders), best(orders), stats(orders);
  ChrfNgrams hyp(options), ref(options);
  for (std::size_t line = 0; line < hypotheses.size(); ++line) {
    hyp.assign(prepare(hypotheses[line]));
    // the reference with the best F of this segment, the first on ties
    double best_score = -1;
    for (const auto& stream : references) {
      ref.assign(prepare(stream[line]));
      for (std::size_t i = 0; i < orders; ++i) {
        const Counts& h = hyp.counts(i);
        const Counts& r = ref.counts(i);
        stats.hyp[i] = r.total() == 0 ? 0 : h.total();
        stats.ref[i] = r.total();
        stats.match[i] = matches(h, r);
      }
      const double f = chrf_score(stats, options.beta);
      if (f > best_score) best_score = f, best = stats;
    }
    for (std::size_t i = 0; i < orders; ++i) {
      corpus.hyp[i] += best.hyp[i];
      corpus.ref[i] += best.ref[i];
      corpus.match[i] += best.match[i];
    }
  }
  return chrf_score(corpus, options.beta);
}

}  // namespace rune::text
