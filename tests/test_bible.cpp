// The Bible corpus (text/bible.hpp): the OSIS parser on markup copied from the two modules, the
// Strong's alignment, the book split, a small SWORD module this test writes with libsword and reads
// back, the cache, and one pass over the real installed modules.
#include <gtest/gtest.h>

#include <rawtext.h>
#include <versekey.h>

#include <chrono>
#include <fstream>
#include <iostream>
#include <map>

#include "tests/helpers.hpp"
#include "text/bible.hpp"

namespace rune::text {
namespace {

using Strongs = std::vector<std::vector<std::string>>;

// engWEB2015eb Genesis 1:1: one word per <w>, and a footnote glued between "God" and "created".
const char* kWebGen1_1 =
    R"(<w lemma="strong:H0430">In</w> <w lemma="strong:H0853">the</w> <w lemma="strong:H7225">beginning</w>, )"
    R"(<w lemma="strong:H0430">God</w><note placement="foot"><reference type="annotateRef">1:1 </reference>The )"
    R"(Hebrew word rendered “God” is “אֱלֹהִ֑ים” (Elohim).</note><w lemma="strong:H1254">created</w> )"
    R"(<w lemma="strong:H0853">the</w> <w lemma="strong:H8064">heavens</w> <w lemma="strong:H0430">and</w> )"
    R"(<w lemma="strong:H0853">the</w> <w lemma="strong:H0776">earth</w>.)";

// spaRV1909eb Genesis 1:1: several words per <w>.
const char* kRvGen1_1 =
    R"(<w lemma="strong:H7225">EN el principio</w> <w lemma="strong:H1254">crió</w> <w lemma="strong:H0430">Dios</w> )"
    R"(<w lemma="strong:H8064">los cielos</w> <w lemma="strong:H0776">y la tierra</w>.)";

TEST(Bible, ParsesOneWordTagsAndDropsAFootnoteBetweenTwoWords) {
  Verse v = parse_osis_verse(kWebGen1_1);
  EXPECT_EQ(v.text, "In the beginning, God created the heavens and the earth.");
  EXPECT_EQ(v.strongs, (Strongs{{"H0430"},
                                {"H0853"},
                                {"H7225"},
                                {"H0430"},
                                {"H1254"},
                                {"H0853"},
                                {"H8064"},
                                {"H0430"},
                                {"H0853"},
                                {"H0776"}}));
  EXPECT_TRUE(v.book.empty());
  EXPECT_EQ(v.chapter, 0);
  EXPECT_EQ(v.verse, 0);
}

TEST(Bible, AFootnoteBeforePunctuationLeavesItOnTheWord) {
  // engWEB2015eb Genesis 4:1 (shortened): ",<note>...</note>and" and "earth<note>..</note>."
  Verse v = parse_osis_verse(
      R"(She conceived,<note placement="foot"><reference type="annotateRef">4:1 </reference>or, became )"
      R"(pregnant</note><w lemma="strong:H3068">and</w> the <w lemma="strong:H0776">earth</w><note>TR &amp;NU </note>.)");
  EXPECT_EQ(v.text, "She conceived, and the earth.");
  EXPECT_EQ(v.strongs, (Strongs{{}, {}, {"H3068"}, {}, {"H0776"}}));
}

TEST(Bible, GivesEveryWordOfAMultiWordTagItsNumbers) {
  Verse v = parse_osis_verse(kRvGen1_1);
  EXPECT_EQ(v.text, "EN el principio crió Dios los cielos y la tierra.");
  EXPECT_EQ(v.strongs, (Strongs{{"H7225"},
                                {"H7225"},
                                {"H7225"},
                                {"H1254"},
                                {"H0430"},
                                {"H8064"},
                                {"H8064"},
                                {"H0776"},
                                {"H0776"},
                                {"H0776"}}));
}

TEST(Bible, KeepsSeveralNumbersOfOneTagAndIgnoresOtherLemmas) {
  // spaRV1909eb Matthew 1:1 (start), then a lemma with another scheme after the Strong's numbers
  Verse v = parse_osis_verse(
      R"(<w lemma="strong:G0976">LIBRO</w> <w lemma="strong:G1078">de la generación</w> )"
      R"(<w lemma="strong:G2424 G5547">de Jesucristo</w>, <w lemma="strong:H430 lemma.TR:theos">Dios</w>)");
  EXPECT_EQ(v.text, "LIBRO de la generación de Jesucristo, Dios");
  EXPECT_EQ(v.strongs,
            (Strongs{{"G0976"}, {"G1078"}, {"G1078"}, {"G1078"}, {"G2424", "G5547"}, {"G2424", "G5547"}, {"H0430"}}));
}

TEST(Bible, KeepsCanonicalPsalmTitlesAndLinesAndDropsHeadings) {
  // engWEB2015eb Psalm 23:1: the title is part of verse 1 (as in the RV1909, where it is plain text)
  Verse v = parse_osis_verse(
      R"(<div type="x-milestone" subType="x-preverse" sID="pv5154"/><title canonical="true" type="psalm">A Psalm )"
      R"(by David.</title> <lg sID="gen8524"/> <l level="1" sID="gen8525"/><div type="x-milestone" )"
      R"(subType="x-preverse" eID="pv5154"/><w lemma="strong:H3068">Yahweh</w> <w lemma="strong:H3068">is</w> )"
      R"(<w lemma="strong:H3068">my</w> <w lemma="strong:H7462">shepherd</w>;<l eID="gen8525" level="1"/> <l )"
      R"(level="2" sID="gen8526"/><w lemma="strong:H3068">I</w> <w lemma="strong:H3068">shall</w> <w )"
      R"(lemma="strong:H2637">lack</w> <w lemma="strong:H3808">nothing</w>. <l eID="gen8526" level="2"/>)");
  EXPECT_EQ(v.text, "A Psalm by David. Yahweh is my shepherd; I shall lack nothing.");
  ASSERT_EQ(v.strongs.size(), 12u);
  EXPECT_TRUE(v.strongs[0].empty());
  EXPECT_EQ(v.strongs[7], std::vector<std::string>{"H7462"});
  EXPECT_EQ(v.strongs[8], std::vector<std::string>{"H3068"});
  // a section heading and a Song of Songs speaker label are not verse text; lines separate words
  Verse h = parse_osis_verse(
      R"(<title level="1" type="main">The Preface</title><speaker>Beloved</speaker> <lg sID="g1"/><l level="1" )"
      R"(sID="g2"/>Let him kiss me<l eID="g2" level="1"/><l level="2" sID="g3"/>with kisses<lb type="x-p"/>Amen)");
  EXPECT_EQ(h.text, "Let him kiss me with kisses Amen");
}

TEST(Bible, KeepsQuotationsAndAddedWordsAndDecodesEntities) {
  // engWEB2015eb Matthew 19:14 (start): words of Jesus inside <q>
  Verse q = parse_osis_verse(
      R"(<w lemma="strong:G0846">him</w>, <q marker="" who="Jesus">“<w lemma="strong:G0863">Allow</w> the )"
      R"(children</q>)");
  EXPECT_EQ(q.text, "him, “Allow the children");
  EXPECT_EQ(q.strongs, (Strongs{{"G0846"}, {"G0863"}, {}, {}}));
  // spaRV1909eb Genesis 1:9 (start): a word the translators added, untagged
  Verse t =
      parse_osis_verse(R"(<w lemma="strong:H4325">las aguas</w> que <transChange type="added">están</transChange> )"
                       R"(<w lemma="strong:H8478">debajo</w>)");
  EXPECT_EQ(t.text, "las aguas que están debajo");
  EXPECT_EQ(t.strongs, (Strongs{{"H4325"}, {"H4325"}, {}, {}, {"H8478"}}));
  Verse e = parse_osis_verse("  Tom &amp; Jerry&#8217;s &lt;book&gt;\n\t&#x263A; &unknown; ");
  EXPECT_EQ(e.text, "Tom & Jerry’s <book> ☺ &unknown;");
  EXPECT_EQ(e.strongs.size(), 6u);
  EXPECT_EQ(parse_osis_verse(R"(<note>only a note</note> <div eID="x"/>)").text, "");
}

TEST(Bible, WordsAssembledFromTwoTagsCarryBothNumbers) {
  Verse v = parse_osis_verse(R"(<w lemma="strong:H0001">ab</w>-<w lemma="strong:H0002">cd</w> ef)");
  EXPECT_EQ(v.text, "ab-cd ef");
  EXPECT_EQ(v.strongs, (Strongs{{"H0001", "H0002"}, {}}));
}

TEST(Bible, SeparatesAddedWordsGluedToTaggedOnesButKeepsEnclitics) {
  // spaRV1909eb Romans 16:27 (end) and Proverbs 24:32 (middle)
  Verse v =
      parse_osis_verse(R"(<w lemma="strong:G4514">los Romanos</w>, <transChange type="added">enviada</transChange><w )"
                       R"(lemma="strong:G1223">por</w><transChange type="added">medio de</transChange><w )"
                       R"(lemma="strong:G5402">Febe</w>, <w lemma="strong:H7896">y púse</w><transChange )"
                       R"(type="added">lo</transChange> <w lemma="strong:H3820">en mi corazón</w>)");
  EXPECT_EQ(v.text, "los Romanos, enviada por medio de Febe, y púselo en mi corazón");
  EXPECT_EQ(v.strongs, (Strongs{{"G4514"},
                                {"G4514"},
                                {},
                                {"G1223"},
                                {},
                                {},
                                {"G5402"},
                                {"H7896"},
                                {"H7896"},
                                {"H3820"},
                                {"H3820"},
                                {"H3820"}}));
}

TEST(Bible, AlignsWordsSharingAStrongsNumber) {
  EXPECT_EQ(strongs_alignment(parse_osis_verse(kWebGen1_1).strongs, parse_osis_verse(kRvGen1_1).strongs),
            (std::vector<std::pair<int, int>>{
                {0, 4}, {2, 0}, {2, 1}, {2, 2}, {3, 4}, {4, 3}, {6, 5}, {6, 6}, {7, 4}, {9, 7}, {9, 8}, {9, 9}}));
  EXPECT_EQ(strongs_alignment({{"G2424", "G5547"}, {}, {"G0001"}}, {{"G5547"}, {"G0001", "G2424"}}),
            (std::vector<std::pair<int, int>>{{0, 0}, {0, 1}, {2, 1}}));
  EXPECT_TRUE(strongs_alignment({{}, {"H0001"}}, {{"H0002"}}).empty());
  EXPECT_TRUE(strongs_alignment({}, {{"H0002"}}).empty());
}

TEST(Bible, SplitsByWholeBooks) {
  EXPECT_EQ(bible_split("Acts"), BibleSplit::test);
  EXPECT_EQ(bible_split("Josh"), BibleSplit::val);
  EXPECT_EQ(bible_split("Rom"), BibleSplit::val);
  EXPECT_EQ(bible_split("Gen"), BibleSplit::train);
  EXPECT_EQ(bible_split("Matt"), BibleSplit::train);
  EXPECT_EQ(bible_split("1John"), BibleSplit::train);
  EXPECT_STREQ(split_name(BibleSplit::val), "val");
  EXPECT_NE(error_of([] { bible_split("Tob"); }).find("'Tob' is not the OSIS name"), std::string::npos);
  EXPECT_NE(error_of([] { bible_split("Genesis"); }).find("66 books"), std::string::npos);
}

Verse verse(const std::string& book, int chapter, int number, const std::string& markup) {
  Verse v = parse_osis_verse(markup);
  v.book = book;
  v.chapter = chapter;
  v.verse = number;
  return v;
}

TEST(Bible, PairsVersesByReferenceInTheCanonicalBooks) {
  std::vector<Verse> en = {verse("Gen", 1, 1, kWebGen1_1), verse("Gen", 1, 2, "only in English"),
                           verse("Tob", 1, 1, "a deuterocanonical verse"), verse("Acts", 8, 36, "x"),
                           verse("Rev", 22, 21, "Amen.")};
  std::vector<Verse> es = {verse("Gen", 1, 1, kRvGen1_1), verse("Tob", 1, 1, "Tobías"), verse("Acts", 8, 36, ""),
                           verse("Acts", 8, 37, "only in Spanish"), verse("Rev", 22, 21, "Amén.")};
  auto pairs = pair_verses(en, es);
  ASSERT_EQ(pairs.size(), 2u);
  EXPECT_EQ(pairs[0].book, "Gen");
  EXPECT_EQ(pairs[0].source, "In the beginning, God created the heavens and the earth.");
  EXPECT_EQ(pairs[0].target, "EN el principio crió Dios los cielos y la tierra.");
  EXPECT_EQ(pairs[0].target_strongs, parse_osis_verse(kRvGen1_1).strongs);
  EXPECT_EQ(pairs[1].book, "Rev");
  EXPECT_EQ(pairs[1].chapter, 22);
  EXPECT_EQ(pairs[1].verse, 21);
  EXPECT_EQ(pairs[1].target, "Amén.");
}

// A RawText module written with libsword in `dir`, with its mods.d/<name>.conf.
void write_module(const std::filesystem::path& dir, const std::string& name,
                  const std::vector<std::pair<std::string, std::string>>& entries) {
  const std::string data = "modules/texts/rawtext/" + name + "/";
  std::filesystem::create_directories(dir / "mods.d");
  std::filesystem::create_directories(dir / data);
  std::ofstream(dir / "mods.d" / (name + ".conf"))
      << "[" << name << "]\nDataPath=./" << data << "\nModDrv=RawText\nSourceType=OSIS\nEncoding=UTF-8\n"
      << "Versification=KJV\nLang=en\n";
  ASSERT_EQ(sword::RawText::createModule((dir / data).c_str(), "KJV"), 0);
  sword::RawText mod((dir / data).c_str(), name.c_str(), "", nullptr, sword::ENC_UTF8, sword::DIRECTION_LTR,
                     sword::FMT_OSIS, "en", "KJV");
  sword::VerseKey key;
  key.setVersificationSystem("KJV");
  key.setIntros(true);
  for (const auto& [reference, markup] : entries) {
    key.setText(reference.c_str());
    mod.setKey(key);
    mod.setEntry(markup.c_str());
  }
}

TEST(Bible, ReadsAModuleThroughLibsword) {
  const auto dir = scratch_dir("bible_module");
  write_module(dir, "TestBible",
               {{"Gen 1:0", "<title>Chapter 1</title>The chapter's introduction"},
                {"Gen 1:1", kWebGen1_1},
                {"Gen 1:2", "<note>a verse that is only a footnote</note>"},
                {"Ps 23:1", "<w lemma=\"strong:H3068\">JEHOVÁ</w> es mi pastor"},
                {"Matt 1:1", "The book"},
                {"1John 5:7", "the third"},
                {"Rev 22:21", "Amen."}});
  auto verses = read_sword_module("TestBible", dir.string());
  ASSERT_EQ(verses.size(), 5u);
  EXPECT_EQ(verses[0].book, "Gen");
  EXPECT_EQ(verses[0].chapter, 1);
  EXPECT_EQ(verses[0].verse, 1);
  EXPECT_EQ(verses[0].text, "In the beginning, God created the heavens and the earth.");
  EXPECT_EQ(verses[0].strongs, parse_osis_verse(kWebGen1_1).strongs);
  EXPECT_EQ(verses[1].book, "Ps");
  EXPECT_EQ(verses[1].strongs, (Strongs{{"H3068"}, {}, {}, {}}));
  EXPECT_EQ(verses[2].book, "Matt");
  EXPECT_EQ(verses[3].book, "1John");
  EXPECT_EQ(verses[3].chapter, 5);
  EXPECT_EQ(verses[3].verse, 7);
  EXPECT_EQ(verses[4].book, "Rev");
  EXPECT_EQ(verses[4].text, "Amen.");
}

TEST(Bible, AMissingModuleSaysWhatToInstallOrWhatIsThere) {
  const auto dir = scratch_dir("bible_missing");
  write_module(dir, "TestBible", {{"Gen 1:1", "In the beginning"}});
  EXPECT_EQ(
      error_of([&] { read_sword_module("engWEB2015eb", dir.string()); }),
      "SWORD module 'engWEB2015eb' not found in " + dir.string() + " (install the Debian package sword-text-web)");
  EXPECT_NE(error_of([&] { read_sword_module("spaRV1909eb", dir.string()); }).find("sword-text-sparv"),
            std::string::npos);
  EXPECT_EQ(error_of([&] { read_sword_module("NoSuchBible", dir.string()); }),
            "SWORD module 'NoSuchBible' not found in " + dir.string() + " (it has: TestBible)");
  const auto empty = scratch_dir("bible_empty");
  EXPECT_NE(error_of([&] { read_sword_module("NoSuchBible", empty.string()); }).find("(it has no modules)"),
            std::string::npos);
}

std::vector<VersePair> some_pairs() {
  return pair_verses({verse("Gen", 1, 1, kWebGen1_1), verse("Acts", 1, 1, "<w lemma=\"strong:G3303 G0001\">The</w> x")},
                     {verse("Gen", 1, 1, kRvGen1_1), verse("Acts", 1, 1, "En el")});
}

TEST(Bible, CacheRoundTrip) {
  // in a folder that does not exist yet: the cache makes it
  const auto path = (scratch_dir("bible_cache") / "data" / "bible" / "pairs.tsv").string();
  auto pairs = some_pairs();
  write_bible_cache(path, pairs, "engWEB2015eb", "spaRV1909eb");
  auto back = read_bible_cache(path);
  ASSERT_EQ(back.size(), pairs.size());
  for (std::size_t i = 0; i < pairs.size(); ++i) {
    EXPECT_EQ(back[i].book, pairs[i].book);
    EXPECT_EQ(back[i].chapter, pairs[i].chapter);
    EXPECT_EQ(back[i].verse, pairs[i].verse);
    EXPECT_EQ(back[i].source, pairs[i].source);
    EXPECT_EQ(back[i].target, pairs[i].target);
    EXPECT_EQ(back[i].source_strongs, pairs[i].source_strongs);
    EXPECT_EQ(back[i].target_strongs, pairs[i].target_strongs);
  }
  EXPECT_EQ(back[1].source_strongs, (Strongs{{"G3303", "G0001"}, {}}));
}

TEST(Bible, ACorruptCacheIsRefusedNamingFileAndLine) {
  const auto dir = scratch_dir("bible_corrupt");
  const auto path = (dir / "pairs.tsv").string();
  write_bible_cache(path, some_pairs(), "engWEB2015eb", "spaRV1909eb");
  const std::string good = read_file(path);
  auto refused = [&](const std::string& content) {
    std::ofstream(path, std::ios::binary | std::ios::trunc) << content;
    return error_of([&] { read_bible_cache(path); });
  };
  EXPECT_EQ(refused("rune-bible-cache 0\ta\tb\n").rfind(path + ":1: not a Bible cache of this version", 0), 0u);
  std::string line3 = good.substr(0, good.rfind('\n', good.size() - 2) + 1);  // header and line 2
  EXPECT_EQ(refused(line3 + "Acts\t1\t1\tThe x\tEn el\tG3303\t- -\n"),
            path + ":3: 1 source Strong's entries for 2 words");
  EXPECT_EQ(refused(line3 + "Acts\t1\tone\tThe x\tEn el\tG3303 -\t- -\n"),
            path + ":3: verse 'one' is not a positive number");
  EXPECT_EQ(refused(line3 + "Acts\t1\t1\tThe x\n").rfind(path + ":3: 4 columns, expected 7", 0), 0u);
  EXPECT_EQ(refused(line3 + "Tobit\t1\t1\tThe x\tEn el\tG3303 -\t- -\n"), path + ":3: unknown book 'Tobit'");
  EXPECT_EQ(refused(line3 + "Acts\t1\t1\tThe x\tEn el\tG3303 -\t- X9\n"),
            path + ":3: 'X9' is not a Strong's number (H0430, G2424)");
  EXPECT_EQ(refused(good.substr(0, good.size() - 5)).rfind(path + ":3:", 0), 0u);  // cut short
  EXPECT_EQ(error_of([&] { read_bible_cache((dir / "absent.tsv").string()); }),
            (dir / "absent.tsv").string() + ": cannot open the Bible cache");
}

TEST(Bible, LoadRebuildsACacheOfOtherModulesAndThenReadsIt) {
  const auto dir = scratch_dir("bible_load");
  write_module(dir, "En", {{"Gen 1:1", kWebGen1_1}, {"Acts 1:1", "The first book"}});
  write_module(dir, "Es", {{"Gen 1:1", kRvGen1_1}, {"Acts 1:1", "En el primer tratado"}});
  const auto cache = (dir / "cache.tsv").string();
  // a cache of other modules is replaced by the pairs of these
  write_bible_cache(cache, some_pairs(), "En", "Other");
  auto pairs = load_bible_pairs(cache, "En", "Es", dir.string());
  ASSERT_EQ(pairs.size(), 2u);
  EXPECT_EQ(pairs[1].source, "The first book");
  EXPECT_EQ(pairs[1].target, "En el primer tratado");
  EXPECT_EQ(read_file(cache).substr(0, 25), "rune-bible-cache 1\tEn\tEs\n");
  // the cache is what is read next time: a changed cache shows through
  std::string text = read_file(cache);
  text.replace(text.find("The first book"), 14, "The first text");
  std::ofstream(cache, std::ios::trunc) << text;
  EXPECT_EQ(load_bible_pairs(cache, "En", "Es", dir.string())[1].source, "The first text");
}

TEST(Bible, ReadsTheInstalledWebAndReinaValera) {
  const auto start = std::chrono::steady_clock::now();
  auto pairs = pair_verses(read_sword_module("engWEB2015eb"), read_sword_module("spaRV1909eb"));
  std::cout << "  both modules read and paired in "
            << std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() << " s\n";
  EXPECT_EQ(pairs.size(), 31077u);
  std::map<BibleSplit, int> per_split;
  for (const auto& p : pairs) ++per_split[bible_split(p.book)];
  EXPECT_GE(per_split[BibleSplit::val], 1000);
  EXPECT_GE(per_split[BibleSplit::test], 1000);
  EXPECT_EQ(pairs.front().source, "In the beginning, God created the heavens and the earth.");
  EXPECT_EQ(pairs.front().target, "EN el principio crió Dios los cielos y la tierra.");
  EXPECT_EQ(pairs.back().book, "Rev");
}

}  // namespace
}  // namespace rune::text
