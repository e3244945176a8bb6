#include "text/bible.hpp"

#include <swmgr.h>
#include <swmodule.h>
#include <versekey.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <stdexcept>
#include <tuple>

#include "text/utf8.hpp"
#include "train/files.hpp"

namespace rune::text {

namespace {

// ------------------------------------------------------------------------------------ markup

struct Tag {
  std::string name;
  bool closing = false, self_closing = false;
  std::vector<std::pair<std::string, std::string>> attributes;  // few: a map would cost more
  const std::string* attribute(const char* key) const {
    for (const auto& [k, v] : attributes)
      if (k == key) return &v;
    return nullptr;
  }
};

Tag parse_tag(const std::string& s, std::size_t begin, std::size_t end) {  // s[begin] == '<', s[end] == '>'
  Tag tag;
  std::size_t i = begin + 1;
  if (i < end && s[i] == '/') tag.closing = true, ++i;
  tag.self_closing = end > begin + 1 && s[end - 1] == '/';
  std::size_t name_end = i;
  while (name_end < end && s[name_end] != ' ' && s[name_end] != '/' && s[name_end] != '\t' && s[name_end] != '\n')
    ++name_end;
  tag.name = s.substr(i, name_end - i);
  // attributes: name="value" or name='value'
  for (i = name_end; i < end;) {
    std::size_t eq = s.find('=', i);
    if (eq == std::string::npos || eq >= end || eq + 1 >= end) break;
    char quote = s[eq + 1];
    if (quote != '"' && quote != '\'') break;
    std::size_t close = s.find(quote, eq + 2);
    if (close == std::string::npos || close > end) break;
    std::size_t name_begin = i;
    while (name_begin < eq && (s[name_begin] == ' ' || s[name_begin] == '\t' || s[name_begin] == '\n')) ++name_begin;
    tag.attributes.emplace_back(s.substr(name_begin, eq - name_begin), s.substr(eq + 2, close - eq - 2));
    i = close + 1;
  }
  return tag;
}

// Decodes the entity at s[i] == '&' into `out`; returns the index after it. An unknown or
// unterminated entity is kept as it is.
std::size_t decode_entity(const std::string& s, std::size_t i, std::string& out) {
  std::size_t semi = s.find(';', i);
  if (semi == std::string::npos || semi - i > 10) {
    out += '&';
    return i + 1;
  }
  std::string name = s.substr(i + 1, semi - i - 1);
  static const std::map<std::string, std::string> named = {{"amp", "&"},   {"lt", "<"},   {"gt", ">"},
                                                           {"quot", "\""}, {"apos", "'"}, {"nbsp", " "}};
  if (auto it = named.find(name); it != named.end()) {
    out += it->second;
    return semi + 1;
  }
  if (name.size() > 1 && name[0] == '#') {
    bool hex = name[1] == 'x' || name[1] == 'X';
    std::string digits = name.substr(hex ? 2 : 1);
    char* end = nullptr;
    unsigned long cp = std::strtoul(digits.c_str(), &end, hex ? 16 : 10);
    if (!digits.empty() && *end == '\0' && cp > 0 && cp <= 0x10FFFF) {
      append_utf8(out, static_cast<char32_t>(cp));
      return semi + 1;
    }
  }
  out += '&';
  return i + 1;
}

// "strong:G2424 G5547 lemma.TR:x" -> {"G2424", "G5547"}: a token "prefix:value" sets the prefix
// that the following bare tokens share.
std::vector<std::string> strongs_of(const std::string& lemma) {
  std::vector<std::string> out;
  std::string prefix;
  for (std::size_t begin = 0; begin < lemma.size();) {
    std::size_t end = lemma.find(' ', begin);
    if (end == std::string::npos) end = lemma.size();
    std::string value = lemma.substr(begin, end - begin);
    begin = end + 1;
    if (std::size_t colon = value.find(':'); colon != std::string::npos) {
      prefix = value.substr(0, colon);
      value.erase(0, colon + 1);
    }
    if (prefix != "strong" || value.empty()) continue;
    // a letter and at least four digits, then any suffix: H430 and H0430 are the same number
    std::size_t d = 1;
    while (d < value.size() && value[d] >= '0' && value[d] <= '9') ++d;
    std::string digits = value.substr(1, d - 1);
    std::size_t nonzero = digits.find_first_not_of('0');
    digits = nonzero == std::string::npos ? "0" : digits.substr(nonzero);
    if (digits.size() < 4) digits.insert(0, 4 - digits.size(), '0');
    out.push_back(value.substr(0, 1) + digits + value.substr(d));
  }
  return out;
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

// After a dropped element (a footnote between two words, "God<note>..</note><w>created</w>") the
// next character starts a new word, unless it closes what came before ("earth<note>..</note>.").
bool closes_word(const std::string& s, std::size_t i) {
  static const char* closers[] = {".", ",",  ";",      ":",      "?",      "!",      ")",     "]",
                                  "'", "\"", "\u201D", "\u2019", "\u00BB", "\u2014", "\u2026"};
  for (const char* c : closers)
    if (s.compare(i, std::char_traits<char>::length(c), c) == 0) return true;
  return false;
}

// Elements whose content is not verse text: footnotes (with their references, readings and catch
// words), headings other than canonical psalm titles, and the speaker labels of the Song of Songs.
bool dropped(const Tag& tag) {
  if (tag.name == "note" || tag.name == "speaker") return true;
  if (tag.name == "title") {
    const std::string* canonical = tag.attribute("canonical");
    return !canonical || *canonical != "true";
  }
  return false;
}

// Line, line-group, paragraph and list boundaries separate words even without whitespace.
bool separates(const Tag& tag) {
  for (const char* name : {"l", "lg", "lb", "div", "p", "chapter", "item", "list"})
    if (tag.name == name) return true;
  return false;
}

// The RV1909 glues added words to tagged ones without a space ("enviada</transChange><w>por</w>"):
// such a seam is a word boundary, unless the added word is an enclitic pronoun the tagged verb
// takes ("púse</w><transChange>lo</transChange>": "púselo").
bool is_enclitic(const std::string& word) {
  for (const char* e : {"lo", "la", "los", "las", "le", "les", "me", "te", "se", "nos", "os"})
    if (word == e) return true;
  return false;
}

const std::vector<std::string>& canonical_books() {
  static const std::vector<std::string> books = {
      "Gen",   "Exod", "Lev",  "Num",  "Deut", "Josh", "Judg",  "Ruth",   "1Sam",   "2Sam",  "1Kgs",
      "2Kgs",  "1Chr", "2Chr", "Ezra", "Neh",  "Esth", "Job",   "Ps",     "Prov",   "Eccl",  "Song",
      "Isa",   "Jer",  "Lam",  "Ezek", "Dan",  "Hos",  "Joel",  "Amos",   "Obad",   "Jonah", "Mic",
      "Nah",   "Hab",  "Zeph", "Hag",  "Zech", "Mal",  "Matt",  "Mark",   "Luke",   "John",  "Acts",
      "Rom",   "1Cor", "2Cor", "Gal",  "Eph",  "Phil", "Col",   "1Thess", "2Thess", "1Tim",  "2Tim",
      "Titus", "Phlm", "Heb",  "Jas",  "1Pet", "2Pet", "1John", "2John",  "3John",  "Jude",  "Rev"};
  return books;
}

bool is_canonical(const std::string& book) {
  const auto& books = canonical_books();
  return std::find(books.begin(), books.end(), book) != books.end();
}

}  // namespace

Verse parse_osis_verse(const std::string& markup) {
  Verse verse;
  std::vector<std::string> words;
  std::string word;
  std::vector<std::string> word_strongs;
  std::vector<std::vector<std::string>> open_w;  // the numbers of each <w> we are inside
  int skip_depth = 0;                            // > 0: inside a dropped element
  bool break_pending = false;
  bool at_seam = false;  // right after </w> or </transChange>, no text since

  auto end_word = [&] {
    if (!word.empty()) {
      words.push_back(word);
      verse.strongs.push_back(word_strongs);
    }
    word.clear();
    word_strongs.clear();
  };
  auto add_text = [&](const std::string& text) {
    for (std::size_t i = 0; i < text.size(); ++i) {
      if (is_space(text[i])) {
        end_word();
        break_pending = false;
        continue;
      }
      if (break_pending && !closes_word(text, i)) end_word();
      break_pending = false;
      word += text[i];
      for (const auto& numbers : open_w)
        for (const auto& n : numbers)
          if (std::find(word_strongs.begin(), word_strongs.end(), n) == word_strongs.end()) word_strongs.push_back(n);
    }
  };

  std::string text;  // decoded text since the last tag
  for (std::size_t i = 0; i < markup.size();) {
    char c = markup[i];
    if (c == '<') {
      std::size_t end = markup.find('>', i);
      if (end == std::string::npos) break;  // a truncated tag ends the entry
      Tag tag = parse_tag(markup, i, end);
      i = end + 1;
      if (skip_depth > 0) {
        if (tag.closing)
          --skip_depth;
        else if (!tag.self_closing)
          ++skip_depth;
        if (skip_depth == 0) break_pending = true;
        continue;
      }
      add_text(text);
      if (!text.empty()) at_seam = false;
      text.clear();
      const bool inline_tag = tag.name == "w" || tag.name == "transChange";
      if (at_seam && inline_tag && !tag.closing) {
        std::size_t content_end = markup.find('<', i);
        if (tag.name == "w" || !is_enclitic(markup.substr(i, content_end - i))) end_word();
      }
      at_seam = inline_tag && tag.closing;
      if (tag.closing) {
        if (tag.name == "w" && !open_w.empty()) open_w.pop_back();
      } else if (dropped(tag)) {
        if (!tag.self_closing) skip_depth = 1;
      } else if (tag.name == "w" && !tag.self_closing) {
        const std::string* lemma = tag.attribute("lemma");
        open_w.push_back(lemma ? strongs_of(*lemma) : std::vector<std::string>{});
      }
      if (separates(tag)) end_word();
      continue;
    }
    if (skip_depth > 0) {
      ++i;
      continue;
    }
    if (c == '&')
      i = decode_entity(markup, i, text);
    else
      text += markup[i++];
  }
  add_text(text);
  end_word();
  for (std::size_t w = 0; w < words.size(); ++w) verse.text += (w ? " " : "") + words[w];
  return verse;
}

namespace {

// The Debian packages that ship the modules this project uses, for the message when one is missing.
std::string package_of(const std::string& module) {
  if (module == "engWEB2015eb") return "sword-text-web";
  if (module == "spaRV1909eb") return "sword-text-sparv";
  if (module == "engKJV2006eb") return "sword-text-kjv";
  return "";
}

std::string default_sword_path() {
  const char* env = std::getenv("SWORD_PATH");
  return env && *env ? env : "/usr/share/sword";
}

}  // namespace

std::vector<Verse> read_sword_module(const std::string& module, const std::string& sword_path) {
  std::string path = sword_path.empty() ? default_sword_path() : sword_path;
  // augmentHome = false: only the folder asked for, never ~/.sword
  sword::SWMgr manager(path.c_str(), true, nullptr, false, false);
  sword::SWModule* mod = manager.getModule(module.c_str());
  if (!mod) {
    std::string message = "SWORD module '" + module + "' not found in " + path;
    if (std::string package = package_of(module); !package.empty()) {
      message += " (install the Debian package " + package + ")";
    } else {
      std::string names;
      for (const auto& [name, m] : manager.getModules())
        names += (names.empty() ? "" : ", ") + std::string(name.c_str());
      message += names.empty() ? " (it has no modules)" : " (it has: " + names + ")";
    }
    throw std::runtime_error(message);
  }
  if (!dynamic_cast<sword::VerseKey*>(mod->getKey()))
    throw std::runtime_error("SWORD module '" + module + "' in " + path + " is not a Bible (no verse references)");
  std::vector<Verse> verses;
  // Linked entries (one text for several verses) come once, under their first verse.
  mod->setSkipConsecutiveLinks(true);
  for (mod->setPosition(sword::TOP); !mod->popError(); mod->increment()) {
    const auto* key = static_cast<const sword::VerseKey*>(mod->getKey());
    if (key->getChapter() < 1 || key->getVerse() < 1) continue;  // book and chapter introductions
    Verse verse = parse_osis_verse(mod->getRawEntry());
    if (verse.text.empty()) continue;
    verse.book = key->getOSISBookName();
    verse.chapter = key->getChapter();
    verse.verse = key->getVerse();
    verses.push_back(std::move(verse));
  }
  return verses;
}

std::vector<VersePair> pair_verses(const std::vector<Verse>& source, const std::vector<Verse>& target) {
  std::map<std::tuple<std::string, int, int>, const Verse*> by_reference;
  for (const auto& v : target)
    if (!v.text.empty()) by_reference.emplace(std::make_tuple(v.book, v.chapter, v.verse), &v);
  std::vector<VersePair> pairs;
  for (const auto& s : source) {
    if (s.text.empty() || !is_canonical(s.book)) continue;
    auto it = by_reference.find(std::make_tuple(s.book, s.chapter, s.verse));
    if (it == by_reference.end()) continue;
    const Verse& t = *it->second;
    pairs.push_back({s.book, s.chapter, s.verse, s.text, t.text, s.strongs, t.strongs});
  }
  return pairs;
}

std::vector<std::pair<int, int>> strongs_alignment(const std::vector<std::vector<std::string>>& source,
                                                   const std::vector<std::vector<std::string>>& target) {
  std::map<std::string, std::vector<int>> target_words;  // number -> the target words carrying it
  for (std::size_t j = 0; j < target.size(); ++j)
    for (const auto& n : target[j]) target_words[n].push_back(static_cast<int>(j));
  std::set<std::pair<int, int>> links;
  for (std::size_t i = 0; i < source.size(); ++i)
    for (const auto& n : source[i])
      if (auto it = target_words.find(n); it != target_words.end())
        for (int j : it->second) links.emplace(static_cast<int>(i), j);
  return {links.begin(), links.end()};
}

// Validation and test books: narrative and letters whose text is not largely repeated elsewhere
// (no synoptic gospel, no book with a parallel in Samuel/Kings/Chronicles); docs/bible.md says why.
BibleSplit bible_split(const std::string& book) {
  if (!is_canonical(book))
    throw std::invalid_argument("'" + book + "' is not the OSIS name of one of the 66 books (Gen, Matt, 1John, ...)");
  if (book == "Acts") return BibleSplit::test;
  if (book == "Josh" || book == "Rom") return BibleSplit::val;
  return BibleSplit::train;
}

const char* split_name(BibleSplit split) {
  switch (split) {
    case BibleSplit::train:
      return "train";
    case BibleSplit::val:
      return "val";
    case BibleSplit::test:
      return "test";
  }
  return "train";
}

// ------------------------------------------------------------------------------------ the cache

namespace {

const char* const kCacheFormat = "rune-bible-cache 1";

std::string cache_header(const std::string& source_module, const std::string& target_module) {
  return std::string(kCacheFormat) + "\t" + source_module + "\t" + target_module;
}

std::string format_strongs(const std::vector<std::vector<std::string>>& strongs) {
  std::string out;
  for (std::size_t w = 0; w < strongs.size(); ++w) {
    if (w) out += ' ';
    if (strongs[w].empty()) out += '-';
    for (std::size_t k = 0; k < strongs[w].size(); ++k) out += (k ? "," : "") + strongs[w][k];
  }
  return out;
}

std::vector<std::string> split_on(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::size_t begin = 0;
  for (std::size_t i = 0; i <= s.size(); ++i)
    if (i == s.size() || s[i] == sep) {
      out.push_back(s.substr(begin, i - begin));
      begin = i + 1;
    }
  return out;
}

int parse_positive(const std::string& s, const std::string& where, const char* what) {
  if (s.empty() || s.size() > 4 || s.find_first_not_of("0123456789") != std::string::npos || std::stoi(s) < 1)
    throw std::runtime_error(where + ": " + what + " '" + s + "' is not a positive number");
  return std::stoi(s);
}

// A side of a pair: its text (words separated by single spaces) and one entry of numbers per word.
std::vector<std::vector<std::string>> parse_side(const std::string& text, const std::string& strongs,
                                                 const std::string& where, const char* side) {
  std::vector<std::string> words = split_on(text, ' ');
  for (const auto& w : words)
    if (w.empty())
      throw std::runtime_error(where + ": the " + std::string(side) + " text is empty or has extra spaces");
  std::vector<std::string> entries = split_on(strongs, ' ');
  if (entries.size() != words.size())
    throw std::runtime_error(where + ": " + std::to_string(entries.size()) + " " + side + " Strong's entries for " +
                             std::to_string(words.size()) + " words");
  std::vector<std::vector<std::string>> out;
  for (const auto& e : entries) {
    if (e.empty()) throw std::runtime_error(where + ": an empty " + std::string(side) + " Strong's entry");
    out.push_back(e == "-" ? std::vector<std::string>{} : split_on(e, ','));
    for (const auto& n : out.back())
      if (n.size() < 2 || (n[0] != 'H' && n[0] != 'G'))
        throw std::runtime_error(where + ": '" + n + "' is not a Strong's number (H0430, G2424)");
  }
  return out;
}

}  // namespace

void write_bible_cache(const std::string& path, const std::vector<VersePair>& pairs, const std::string& source_module,
                       const std::string& target_module) {
  std::string out = cache_header(source_module, target_module) + "\n";
  for (const auto& p : pairs) {
    for (const std::string* s : {&p.book, &p.source, &p.target})
      if (s->find_first_of("\t\n") != std::string::npos)
        throw std::invalid_argument("write_bible_cache: a tab or newline in " + p.book + " " +
                                    std::to_string(p.chapter) + ":" + std::to_string(p.verse));
    out += p.book + "\t" + std::to_string(p.chapter) + "\t" + std::to_string(p.verse) + "\t" + p.source + "\t" +
           p.target + "\t" + format_strongs(p.source_strongs) + "\t" + format_strongs(p.target_strongs) + "\n";
  }
  // the cache's folder (data/bible/ by default) is made on first use
  const std::filesystem::path folder = std::filesystem::path(path).parent_path();
  std::error_code ec;
  if (!folder.empty()) std::filesystem::create_directories(folder, ec);
  if (ec) throw std::runtime_error("Bible cache " + path + ": cannot create its folder: " + ec.message());
  train::write_file(path, out, "Bible cache");
}

std::vector<VersePair> read_bible_cache(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error(path + ": cannot open the Bible cache");
  std::string line;
  if (!std::getline(in, line) || line.rfind(std::string(kCacheFormat) + "\t", 0) != 0 ||
      split_on(line, '\t').size() != 3)
    throw std::runtime_error(path + ":1: not a Bible cache of this version (expected the header '" +
                             std::string(kCacheFormat) + "<TAB>source module<TAB>target module')");
  std::vector<VersePair> pairs;
  for (long number = 2; std::getline(in, line); ++number) {
    std::string where = path + ":" + std::to_string(number);
    std::vector<std::string> f = split_on(line, '\t');
    if (f.size() != 7)
      throw std::runtime_error(where + ": " + std::to_string(f.size()) +
                               " columns, expected 7 (book, chapter, verse, source, target, source and target "
                               "Strong's numbers)");
    if (!is_canonical(f[0])) throw std::runtime_error(where + ": unknown book '" + f[0] + "'");
    VersePair p;
    p.book = f[0];
    p.chapter = parse_positive(f[1], where, "chapter");
    p.verse = parse_positive(f[2], where, "verse");
    p.source = f[3];
    p.target = f[4];
    p.source_strongs = parse_side(f[3], f[5], where, "source");
    p.target_strongs = parse_side(f[4], f[6], where, "target");
    pairs.push_back(std::move(p));
  }
  if (in.bad()) throw std::runtime_error(path + ": read error");
  return pairs;
}

std::vector<VersePair> load_bible_pairs(const std::string& cache_path, const std::string& source_module,
                                        const std::string& target_module, const std::string& sword_path) {
  {
    std::ifstream in(cache_path);
    std::string header;
    if (in && std::getline(in, header) && header == cache_header(source_module, target_module))
      return read_bible_cache(cache_path);
  }
  auto pairs = pair_verses(read_sword_module(source_module, sword_path), read_sword_module(target_module, sword_path));
  write_bible_cache(cache_path, pairs, source_module, target_module);
  return pairs;
}

}  // namespace rune::text
