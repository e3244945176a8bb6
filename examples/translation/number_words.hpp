// Integers as English and French words, spelled exactly as Debian's python3-num2words 0.5.10
// spells them (num2words(n, lang='en') and lang='fr'), for 0 <= n <= 999,999: the built-in
// corpus of the translation example.
//
//   71      seventy-one                  soixante et onze
//   280     two hundred and eighty       deux cent quatre-vingts
//   1200    one thousand, two hundred    mille deux cents
//   80000   eighty thousand              quatre-vingt mille
#pragma once

#include <cstdint>
#include <string>

namespace rune::examples {

inline constexpr std::int64_t kMaxNumberWords = 999'999;

// Throws std::out_of_range outside [0, kMaxNumberWords].
std::string english_words(std::int64_t n);
std::string french_words(std::int64_t n);

}  // namespace rune::examples
