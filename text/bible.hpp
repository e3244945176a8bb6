// The verse-aligned English-Spanish Bible corpus, with gold word alignments from Strong's numbers.
//
// Two SWORD modules (Debian's sword-text-web: engWEB2015eb, the World English Bible, NRSVA
// versification; sword-text-sparv: spaRV1909eb, the Reina-Valera 1909, KJV versification) are read
// through libsword. Their entries are OSIS markup in which words are tagged with Strong's numbers,
// `<w lemma="strong:H7225">beginning</w>` (the WEB tags one word per element, the RV1909 several:
// `<w lemma="strong:H7225">EN el principio</w>`). A verse becomes plain text (footnotes, headings and
// Song of Songs speaker labels dropped; canonical psalm titles kept, as both modules put them in
// verse 1) and, per whitespace word of that text, the Strong's numbers of the <w> elements its
// characters came from. Verses are paired by book, chapter and verse; word i of one side and word j
// of the other are linked when they share a Strong's number. The split into train, validation and
// test is by whole books, fixed here (docs/bible.md says which and why).
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace rune::text {

struct Verse {
  std::string book;  // OSIS name: "Gen", "Matt", "1John"
  int chapter = 0, verse = 0;
  std::string text;                               // plain text, single spaces, trimmed
  std::vector<std::vector<std::string>> strongs;  // per whitespace word of text: "H7225", ...
};

// The pure markup parser: one entry's OSIS markup to its text and Strong's numbers (book, chapter
// and verse are left empty and 0). Entities are decoded, whitespace collapsed and trimmed. Numbers
// are written as a letter and at least four digits ("H430" and "H0430" are both "H0430").
Verse parse_osis_verse(const std::string& markup);

// Every verse (chapter and verse >= 1) of a module with non-empty text, in the module's canonical
// order, read through libsword from `sword_path` (a folder holding mods.d/; empty: $SWORD_PATH, or
// /usr/share/sword). A module that is not there: std::runtime_error naming it, the folder, and the
// Debian package that ships it (or the modules the folder has).
std::vector<Verse> read_sword_module(const std::string& module, const std::string& sword_path = "");

struct VersePair {
  std::string book;
  int chapter = 0, verse = 0;
  std::string source, target;
  std::vector<std::vector<std::string>> source_strongs, target_strongs;  // per word, as in Verse
};

// The verses both sides have (same book, chapter and verse, both texts non-empty) in the 66 books of
// the Protestant canon, in the source's order.
std::vector<VersePair> pair_verses(const std::vector<Verse>& source, const std::vector<Verse>& target);

// (source word, target word) links between words sharing a Strong's number, sorted.
std::vector<std::pair<int, int>> strongs_alignment(const std::vector<std::vector<std::string>>& source,
                                                   const std::vector<std::vector<std::string>>& target);

// The fixed split by whole books: no verse of a test book is ever trained on. A name that is not an
// OSIS name of the 66 books: std::invalid_argument.
enum class BibleSplit { train, val, test };
BibleSplit bible_split(const std::string& book);
const char* split_name(BibleSplit split);  // "train", "val", "test"

// The cache of all pairs: a text file, a header line naming the format version and both modules,
// then one pair per line (book, chapter, verse, source, target, source numbers, target numbers,
// tab-separated; numbers per word separated by spaces, a word's numbers by commas, "-" for none).
// Written atomically (train/files.hpp). Reading refuses another header or a malformed line with a
// std::runtime_error naming the file and line.
void write_bible_cache(const std::string& path, const std::vector<VersePair>& pairs, const std::string& source_module,
                       const std::string& target_module);
std::vector<VersePair> read_bible_cache(const std::string& path);

// The cache at `cache_path` if it exists and names these two modules; otherwise both modules are
// read, paired, and the cache (re)written.
std::vector<VersePair> load_bible_pairs(const std::string& cache_path, const std::string& source_module,
                                        const std::string& target_module, const std::string& sword_path = "");

}  // namespace rune::text
