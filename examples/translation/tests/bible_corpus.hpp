// A small verse-aligned corpus in the Bible cache's format (text/bible.hpp), for the tests of the
// translation task's data.source = "bible": verses of Genesis (training), Joshua (validation) and
// Acts (test), made of a small English-Spanish lexicon word for word, each word tagged with its
// lexicon entry as a Strong's number, so that the gold links are known: word i <-> word i.
#pragma once

#include <random>
#include <string>
#include <vector>

#include "text/bible.hpp"

namespace rune::examples::testing_corpus {

inline const std::vector<std::pair<std::string, std::string>>& lexicon() {
  static const std::vector<std::pair<std::string, std::string>> words{{"king", "rey"},
                                                                      {"said", "dijo"},
                                                                      {"David", "David"},
                                                                      {"people", "pueblo"},
                                                                      {"went", "fué"},
                                                                      {"city", "ciudad"},
                                                                      {"Jerusalem", "Jerusalem"},
                                                                      {"spirit", "espíritu"},
                                                                      {"brothers", "hermanos"},
                                                                      {"house", "casa"},
                                                                      {"word", "palabra"},
                                                                      {"great", "grande"},
                                                                      {"apostles", "apóstoles"},
                                                                      {"Lord", "Señor"},
                                                                      {"land", "tierra"},
                                                                      {"water", "agua"},
                                                                      {"bread", "pan"},
                                                                      {"gave", "dió"},
                                                                      {"heard", "oyó"},
                                                                      {"saw", "vió"},
                                                                      {"fire", "fuego"},
                                                                      {"mountain", "monte"},
                                                                      {"priest", "sacerdote"},
                                                                      {"sons", "hijos"},
                                                                      {"day", "día"},
                                                                      {"night", "noche"},
                                                                      {"Moses", "Moisés"},
                                                                      {"Joshua", "Josué"},
                                                                      {"Paul", "Pablo"},
                                                                      {"Peter", "Pedro"},
                                                                      {"temple", "templo"},
                                                                      {"prayed", "oró"}};
  return words;
}

// `count` verses of `book`, numbered from 1, seeded by the book's name.
inline std::vector<text::VersePair> verses(const std::string& book, int count) {
  std::mt19937 g(static_cast<unsigned>(std::hash<std::string>{}(book)&0xffff));
  std::vector<text::VersePair> out;
  for (int v = 1; v <= count; ++v) {
    text::VersePair p;
    p.book = book;
    p.chapter = 1;
    p.verse = v;
    const int n = 3 + static_cast<int>(g() % 6);
    for (int w = 0; w < n; ++w) {
      const std::size_t e = g() % lexicon().size();
      const std::string number = "H" + std::to_string(1000 + e);
      p.source += (w ? " " : "") + lexicon()[e].first;
      p.target += (w ? " " : "") + lexicon()[e].second;
      p.source_strongs.push_back({number});
      p.target_strongs.push_back({number});
    }
    out.push_back(p);
  }
  return out;
}

// The corpus written as a cache of the default modules at `path`: 300 training verses, 12 of
// validation, 10 of test.
inline void write(const std::string& path) {
  std::vector<text::VersePair> all = verses("Gen", 300);
  for (const auto& [book, count] : {std::pair<const char*, int>{"Josh", 12}, {"Acts", 10}}) {
    const std::vector<text::VersePair> part = verses(book, count);
    all.insert(all.end(), part.begin(), part.end());
  }
  text::write_bible_cache(path, all, "engWEB2015eb", "spaRV1909eb");
}

}  // namespace rune::examples::testing_corpus
