// The translation corpus' spelling (examples/translation/number_words.hpp) against num2words:
// tests/parity/fixtures/number_words.tsv holds 3101 numbers spelled by python3-num2words (every
// number up to 1100 and 2000 drawn over the range). During development all 1,000,000 numbers were
// compared, with no difference.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>

#include "examples/translation/number_words.hpp"

namespace rune::examples {
namespace {

TEST(NumberWords, MatchNum2wordsOnTheFixture) {
  const std::string path = std::string(RUNE_PARITY_DIR) + "/number_words.tsv";
  std::ifstream in(path);
  ASSERT_TRUE(in) << path;
  int checked = 0, wrong = 0;
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream fields(line);
    std::string n, en, fr;
    std::getline(fields, n, '\t');
    std::getline(fields, en, '\t');
    std::getline(fields, fr, '\t');
    const std::int64_t v = std::stoll(n);
    if (english_words(v) != en || french_words(v) != fr) {
      if (++wrong <= 10)
        ADD_FAILURE() << v << ": " << english_words(v) << " / " << french_words(v) << ", num2words: " << en << " / "
                      << fr;
    }
    ++checked;
  }
  EXPECT_EQ(checked, 3101);
  EXPECT_EQ(wrong, 0);
}

TEST(NumberWords, TheIrregularCases) {
  EXPECT_EQ(french_words(71), "soixante et onze");
  EXPECT_EQ(french_words(80), "quatre-vingts");
  EXPECT_EQ(french_words(81), "quatre-vingt-un");
  EXPECT_EQ(french_words(200), "deux cents");
  EXPECT_EQ(french_words(201), "deux cent un");
  EXPECT_EQ(french_words(80000), "quatre-vingt mille");
  EXPECT_EQ(french_words(1000), "mille");
  EXPECT_EQ(english_words(1200), "one thousand, two hundred");
  EXPECT_EQ(english_words(1001), "one thousand and one");
  EXPECT_EQ(english_words(234), "two hundred and thirty-four");
  EXPECT_THROW(english_words(1'000'000), std::out_of_range);
  EXPECT_THROW(french_words(-1), std::out_of_range);
}

}  // namespace
}  // namespace rune::examples
