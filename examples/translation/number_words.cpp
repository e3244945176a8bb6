#include "examples/translation/number_words.hpp"

#include <stdexcept>

namespace rune::examples {
namespace {

void check(std::int64_t n) {
  if (n < 0 || n > kMaxNumberWords)
    throw std::out_of_range("number words: " + std::to_string(n) + " is outside [0, 999999]");
}

// ------------------------------------------------------------------------- English

const char* const kEnUnits[] = {"zero",     "one",     "two",     "three",     "four",     "five",    "six",
                                "seven",    "eight",   "nine",    "ten",       "eleven",   "twelve",  "thirteen",
                                "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"};
const char* const kEnTens[] = {"", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"};

std::string en_below_100(std::int64_t n) {  // 1..99: "twenty-one"
  if (n < 20) return kEnUnits[n];
  return std::string(kEnTens[n / 10]) + (n % 10 ? std::string("-") + kEnUnits[n % 10] : "");
}

std::string en_below_1000(std::int64_t n) {  // 1..999: "one hundred and one"
  if (n < 100) return en_below_100(n);
  const std::string h = std::string(kEnUnits[n / 100]) + " hundred";
  return n % 100 ? h + " and " + en_below_100(n % 100) : h;
}

// ------------------------------------------------------------------------- French

const char* const kFrUnits[] = {"zéro",     "un",     "deux",  "trois",    "quatre",   "cinq",    "six",
                                "sept",     "huit",   "neuf",  "dix",      "onze",     "douze",   "treize",
                                "quatorze", "quinze", "seize", "dix-sept", "dix-huit", "dix-neuf"};
const char* const kFrTens[] = {"", "", "vingt", "trente", "quarante", "cinquante", "soixante"};

// 1..99. `final`: nothing follows in the number, so eighty takes its plural s (quatre-vingts).
std::string fr_below_100(std::int64_t n, bool final) {
  if (n < 20) return kFrUnits[n];
  if (n < 70) {  // vingt et un, vingt-deux ... soixante-neuf
    const std::string t = kFrTens[n / 10];
    if (n % 10 == 0) return t;
    return n % 10 == 1 ? t + " et un" : t + "-" + kFrUnits[n % 10];
  }
  if (n < 80)  // soixante-dix, soixante et onze, soixante-douze ...
    return n == 71 ? "soixante et onze" : "soixante-" + std::string(kFrUnits[n - 60]);
  if (n == 80) return final ? "quatre-vingts" : "quatre-vingt";
  return "quatre-vingt-" + std::string(kFrUnits[n - 80]);  // quatre-vingt-un ... quatre-vingt-dix-neuf
}

// 1..999. Hundreds take the plural s only when nothing follows (deux cents, deux cent un,
// deux cent mille).
std::string fr_below_1000(std::int64_t n, bool final) {
  if (n < 100) return fr_below_100(n, final);
  const std::int64_t h = n / 100, r = n % 100;
  std::string s = h == 1 ? "cent" : std::string(kFrUnits[h]) + " cent";
  if (r == 0) return h > 1 && final ? s + "s" : s;
  return s + " " + fr_below_100(r, final);
}

}  // namespace

std::string english_words(std::int64_t n) {
  check(n);
  if (n == 0) return "zero";
  if (n < 1000) return en_below_1000(n);
  const std::int64_t t = n / 1000, r = n % 1000;
  const std::string head = en_below_1000(t) + " thousand";
  if (r == 0) return head;
  return head + (r < 100 ? " and " : ", ") + en_below_1000(r);  // "and" before a part below 100
}

std::string french_words(std::int64_t n) {
  check(n);
  if (n == 0) return "zéro";
  if (n < 1000) return fr_below_1000(n, true);
  const std::int64_t t = n / 1000, r = n % 1000;
  const std::string head = t == 1 ? "mille" : fr_below_1000(t, false) + " mille";  // mille is invariable
  return r == 0 ? head : head + " " + fr_below_1000(r, true);
}

}  // namespace rune::examples
