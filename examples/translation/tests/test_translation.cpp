// The translation example's data and task: tokenization (words, UTF-8 code points), vocabularies,
// the TSV reader and its errors, the number splits, beam search against greedy decoding, and the
// architecture facts a checkpoint carries. The tiny trainings are in test_translation_e2e.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <set>

#include "autograd/ops.hpp"
#include "examples/translation/corpus.hpp"
#include "examples/translation/number_words.hpp"
#include "examples/translation/translation_task.hpp"
#include "tests/described.hpp"
#include "tests/helpers.hpp"
#include "train/config.hpp"

namespace rune::examples {
namespace {

namespace fs = std::filesystem;

TEST(Translation, TokenizesWordsAndUtf8CodePoints) {
  EXPECT_EQ(tokenize("  deux cent\tun ", Tokenization::word), (std::vector<std::string>{"deux", "cent", "un"}));
  EXPECT_EQ(tokenize("été ß", Tokenization::character), (std::vector<std::string>{"é", "t", "é", " ", "ß"}));
  EXPECT_EQ(tokenize("a€𝄞", Tokenization::character), (std::vector<std::string>{"a", "€", "𝄞"}));
  for (const std::string s : {"vingt et un", "garçon été"}) {
    EXPECT_EQ(join(tokenize(s, Tokenization::word), Tokenization::word), s);
    EXPECT_EQ(join(tokenize(s, Tokenization::character), Tokenization::character), s);
  }
  EXPECT_THROW(tokenization_from_name("bpe"), std::invalid_argument);
}

TEST(Translation, VocabularyKeepsFrequentTokensAfterTheSpecials) {
  const Vocabulary v = Vocabulary::build({{"b", "a", "b"}, {"c", "b", "a"}}, 2);
  EXPECT_EQ(v.tokens(), (std::vector<std::string>{"<pad>", "<bos>", "<eos>", "<unk>", "b", "a"}));
  EXPECT_EQ(v.id("b"), 4);
  EXPECT_EQ(v.id("c"), Vocabulary::unk) << "below min_freq";
  EXPECT_EQ(v.token(5), "a");
  EXPECT_THROW(v.token(6), std::out_of_range);
  EXPECT_THROW(Vocabulary({"a", "b"}), std::invalid_argument);
}

TEST(Translation, TsvPairsAndTheirErrors) {
  const fs::path dir = scratch_dir("translation");
  const std::string good = (dir / "good.tsv").string();
  std::ofstream(good) << "Hi.\tSalut.\r\n\n  \nRun!\tCours !\n\n";
  const std::vector<Pair> pairs = read_tsv_pairs(good);
  ASSERT_EQ(pairs.size(), 2u) << "blank lines, and lines of spaces, are skipped";
  EXPECT_EQ(pairs[0].source, "Hi.");
  EXPECT_EQ(pairs[0].target, "Salut.");
  EXPECT_EQ(pairs[1].target, "Cours !");
  EXPECT_EQ(pairs[1].line, 4) << "lines are counted from 1, blank ones included";
  // every refused line: the message names the file and the line
  const std::vector<std::pair<std::string, std::string>> bad{
      {"Hi.\tSalut.\tCC-BY 2.0 (France) Attribution: tatoeba.org #538123\n",
       ":2: 3 columns, expected 2 (source<TAB>target); `cut -f1,2` keeps the first two"},
      {"two deux\n", ":2: 1 column, expected 2 (source<TAB>target)"},
      {"\tdeux\n", ":2: an empty source, expected source<TAB>target with both sides non-empty"},
      {"two\t \n", ":2: an empty target, expected"},
      {"\t\n", ":2: an empty source and target, expected"}};
  for (const auto& [line, message] : bad) {
    const std::string path = (dir / "bad.tsv").string();
    std::ofstream(path) << "one\tun\n" << line << "three\ttrois\n";
    const std::string e = error_of([&] { read_tsv_pairs(path); });
    EXPECT_EQ(e.rfind(path + message, 0), 0u) << e;
  }
  EXPECT_NE(error_of([&] { read_tsv_pairs((dir / "none.tsv").string()); }).find("cannot be read"), std::string::npos);
  std::ofstream(dir / "empty.tsv") << "\n \n";
  EXPECT_NE(error_of([&] { read_tsv_pairs((dir / "empty.tsv").string()); }).find("holds no sentence pairs"),
            std::string::npos);
  fs::remove_all(dir);
}

// The task built from a config text and --set overrides, then the check for unread keys: what
// either throws.
std::string task_error(const std::string& text, const std::vector<std::string>& sets) {
  return error_of([&] {
    train::Config c = train::Config::parse(text, "t.toml");
    for (const std::string& s : sets) c.set(s);
    Generator init(1), dropout(2);
    TranslationTask task(c, {0, &init, &dropout});
    c.check_all_used();
  });
}

const char* const kTinyModel = "[model]\nd_model = 8\nnhead = 2\nnum_encoder_layers = 1\nnum_decoder_layers = 1\n";

// The keys of the data source not chosen are named with the source that reads them, not as
// unknown keys.
TEST(Translation, KeysOfTheOtherDataSourceAreNamedWithTheSourceThatReadsThem) {
  const fs::path dir = scratch_dir("translation_keys");
  const std::string tsv = (dir / "pairs.tsv").string();
  std::ofstream(tsv) << "one\tun\ntwo\tdeux\nthree\ttrois\nfour\tquatre\nfive\tcinq\n";
  std::string e = task_error("[data]\nsource = \"tsv\"\npath = \"" + tsv +
                                 "\"\nval_fraction = 0.2\neval_size = 10\nsplit_permille = 5\n" + kTinyModel,
                             {});
  EXPECT_NE(e.find("t.toml:5: data.eval_size is read only when data.source = \"numbers\" (here \"tsv\")"),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("t.toml:6: data.split_permille is read only when data.source = \"numbers\""), std::string::npos)
      << e;
  EXPECT_EQ(e.find("unknown key"), std::string::npos) << e;
  e = task_error(std::string("[data]\neval_size = 4\nbatch_size = 4\nval_fraction = 0.2\n") + kTinyModel, {});
  EXPECT_NE(e.find("t.toml:4: data.val_fraction is read only when data.source = \"tsv\" (here \"numbers\")"),
            std::string::npos)
      << e;
  fs::remove_all(dir);
}

// Sizes too large for the machine are refused by key before anything is built: the model's
// parameters (after the data, whose vocabulary it needs), the number pairs, a batch.
TEST(Translation, SizesTooLargeForMemoryAreRefusedByKey) {
  const fs::path dir = scratch_dir("translation_memory");
  const std::string tsv = (dir / "pairs.tsv").string();
  std::ofstream(tsv) << "one\tun\ntwo\tdeux\nthree\ttrois\nfour\tquatre\nfive\tcinq\n";
  std::string e = task_error("[data]\nsource = \"tsv\"\npath = \"" + tsv + "\"\nval_fraction = 0.2\n" + kTinyModel,
                             {"model.d_model=1000000000"});
  EXPECT_NE(e.find("t.toml (--set): model.d_model = 1000000000: the model's "), std::string::npos) << e;
  EXPECT_NE(e.find(" parameters would need "), std::string::npos) << e;
  e = task_error(std::string("[data]\neval_size = 4\nbatch_size = 4\n") + kTinyModel, {"data.eval_size=1000000000"});
  EXPECT_NE(e.find("t.toml (--set): data.eval_size = 1000000000: 2e9 sentence pairs would need "), std::string::npos)
      << e;
  e = task_error(std::string("[data]\neval_size = 4\n") + kTinyModel, {"data.batch_size=100000000"});
  EXPECT_NE(e.find("t.toml (--set): data.batch_size = 100000000: "), std::string::npos) << e;
  fs::remove_all(dir);
}

TEST(Translation, PreviewShowsTheFirstWords) {
  EXPECT_EQ(preview("one two three"), "one two three");
  EXPECT_EQ(preview("one two  three four five six"), "one two three four five ...");
  EXPECT_EQ(preview(std::string(30, 'a') + "ééééééé"), std::string(30, 'a') + "ééééé ...") << "whole code points";
}

// The pairs a TSV task cuts (a side longer than data.max_len with <eos>) are counted in one
// warning at load, naming the file and the first such line.
TEST(Translation, PairsLongerThanMaxLenAreCountedAtLoad) {
  const fs::path dir = scratch_dir("translation_long");
  const std::string path = (dir / "pairs.tsv").string();
  {
    std::ofstream out(path);
    for (int n = 0; n < 40; ++n) out << number_pair(n).source << "\t" << number_pair(n).target << "\n";
    out << "\none two three four\tun\n"         // line 42: the source with <eos> is 5 tokens
        << "one\tun deux trois quatre cinq\n";  // line 43: the target
  }
  const std::string expected = path +
                               ": 2 of 42 pairs are longer than data.max_len = 4 tokens, <eos> included (first: "
                               "line 42) and are cut in training and evaluation; raise data.max_len to keep them whole";
  EXPECT_EQ(long_pairs_warning(read_tsv_pairs(path), Tokenization::word, 4, path), expected);
  EXPECT_EQ(long_pairs_warning(read_tsv_pairs(path), Tokenization::word, 6, path), "") << "all fit";
  const auto load = [&](std::int64_t max_len) {
    train::Config config = train::Config::parse(
        "[data]\nsource = \"tsv\"\npath = \"" + path + "\"\nmax_len = " + std::to_string(max_len) + "\n" + kTinyModel,
        "tiny.toml");
    Generator g(0);
    testing::internal::CaptureStderr();
    TranslationTask task(config, {0, &g, &g});
    return testing::internal::GetCapturedStderr();
  };
  EXPECT_EQ(load(4), expected + "\n");
  EXPECT_EQ(load(6), "");
  fs::remove_all(dir);
}

// Every number's words fit the default data.max_len (64 tokens, <eos> included): the numbers task
// cuts nothing. By characters they do not, and the task says so.
TEST(Translation, NumberWordsFitTheDefaultMaxLen) {
  const auto words = [](const std::string& s) {  // tokenize()'s count, without its stream (a million times)
    std::size_t n = 0;
    for (std::size_t i = 0; i < s.size(); ++i) n += s[i] != ' ' && (i == 0 || s[i - 1] == ' ');
    return n;
  };
  ASSERT_EQ(words(" quatre-vingt  et un "), tokenize(" quatre-vingt  et un ", Tokenization::word).size());
  std::size_t longest = 0;
  for (std::int64_t n = 0; n < 1000000; ++n) {
    const Pair p = number_pair(n);
    longest = std::max({longest, words(p.source), words(p.target)});
  }
  EXPECT_LT(longest, 64u);
  const auto load = [](const std::string& tokenization) {
    train::Config config = train::Config::parse(
        "[data]\neval_size = 50\ntokenization = \"" + tokenization + "\"\n" + kTinyModel, "tiny.toml");
    Generator g(0);
    testing::internal::CaptureStderr();
    TranslationTask task(config, {0, &g, &g});
    return testing::internal::GetCapturedStderr();
  };
  EXPECT_EQ(load("word"), "");
  const std::string chars = load("char");
  EXPECT_EQ(chars.rfind("the number words (a sample): ", 0), 0u) << chars;
  EXPECT_NE(chars.find("pairs are longer than data.max_len = 64 tokens"), std::string::npos) << chars;
}

// What translate() and log_probability() note for a reader: unknown words, inputs longer than the
// model reads, and a translation cut by data.max_len; nothing about a sentence that has none of these.
TEST(Translation, TranslateNotesUnknownWordsAndCutSentences) {
  train::Config config =
      train::Config::parse(std::string("[data]\neval_size = 10\nmax_len = 6\n") + kTinyModel, "tiny.toml");
  Generator g(0);
  testing::internal::CaptureStderr();
  TranslationTask task(config, {0, &g, &g});
  const std::string warning = testing::internal::GetCapturedStderr();
  EXPECT_EQ(warning.rfind("the number words (a sample): ", 0), 0u) << "max_len 6 cuts numbers: " << warning;
  // the output layer made to say one token whatever the input: <eos> first, then "cent"
  Tensor weight, bias;
  for (const auto& [name, t] : task.model().named_parameters()) {
    if (name == "generator.weight") weight = t;
    if (name == "generator.bias") bias = t;
  }
  ASSERT_TRUE(weight.defined() && bias.defined());
  std::fill(weight.data<float>(), weight.data<float>() + weight.numel(), 0.0f);
  const auto always = [&](std::int64_t id) {
    std::fill(bias.data<float>(), bias.data<float>() + bias.numel(), 0.0f);
    bias.data<float>()[id] = 10.0f;
  };
  train::Checkpoint c;
  task.describe(c);
  const std::vector<std::string>& target_words = c.meta_strings.at("target_vocabulary");
  const auto cent = std::find(target_words.begin(), target_words.end(), "cent") - target_words.begin();

  always(Vocabulary::eos);
  const std::vector<std::string> sources{"seventy-one", "seventy-twelve one zillion", "one two three four five six"};
  std::vector<std::string> notes;
  EXPECT_EQ(task.translate(sources, &notes), (std::vector<std::string>{"", "", ""}));
  EXPECT_EQ(notes, (std::vector<std::string>{
                       "sentence 2: \"seventy-twelve\", \"zillion\" are not in the model's source vocabulary (read as "
                       "<unk>)",
                       "sentence 3 (\"one two three four five ...\") has 6 tokens; the model reads 5 of them "
                       "(data.max_len = 6, <eos> included): the rest is ignored"}));
  always(cent);
  notes.clear();
  EXPECT_EQ(task.translate({"seventy-one"}, &notes), (std::vector<std::string>{"cent cent cent cent cent cent"}));
  EXPECT_EQ(notes, (std::vector<std::string>{
                       "sentence 1: the translation reached data.max_len = 6 tokens without <eos>: it is cut there"}));
  notes.clear();
  task.log_probability({{"one", "un"}, {"two", "deux quatorze-vingt"}, {"zillion", "un deux trois quatre cinq six"}},
                       &notes);
  EXPECT_EQ(notes, (std::vector<std::string>{
                       "sentence 2: \"quatorze-vingt\" is not in the model's target vocabulary (read as <unk>)",
                       "sentence 3: \"zillion\" is not in the model's source vocabulary (read as <unk>)",
                       "sentence 3: the target (\"un deux trois quatre cinq ...\") has 6 tokens; the model scores 5 "
                       "of them (data.max_len = 6, <eos> included): the rest is ignored"}));
  EXPECT_EQ(task.translate(sources, nullptr).size(), 3u) << "notes are optional";
}

TEST(Translation, NumberSplitsAreDisjointAndSized) {
  std::int64_t test = 0, val = 0;
  for (std::int64_t n = 0; n < 100000; ++n) {
    const Split s = number_split(n, 0, 10);
    test += s == Split::test;
    val += s == Split::val;
    EXPECT_EQ(s, number_split(n, 0, 10)) << "fixed by the seed";
  }
  EXPECT_NEAR(test / 100000.0, 0.01, 0.002);
  EXPECT_NEAR(val / 100000.0, 0.01, 0.002);
  EXPECT_EQ(number_pair(71).target, "soixante et onze");
}

// The rare classes by example (they overlap), and their sizes over the whole domain.
TEST(Translation, RareClassesAreTheFormsThatDrawingByDigitCountSeldomShows) {
  const auto classes = [](std::int64_t n) {
    std::string names;
    for (const RareClass c : kRareClasses)
      if (in_rare_class(n, c)) names += (names.empty() ? "" : " ") + std::string(rare_class_name(c));
    return names;
  };
  EXPECT_EQ(classes(0), "") << "zero is a word of its own";
  EXPECT_EQ(classes(1), "") << "one alone is the only sentence where \"one\" is not dropped or after \"and\"";
  EXPECT_EQ(classes(2), "below_1000");
  EXPECT_EQ(classes(7), "below_1000");
  EXPECT_EQ(classes(999), "below_1000");
  EXPECT_EQ(classes(1000), "multiple_of_1000");
  EXPECT_EQ(classes(67000), "multiple_of_1000");
  EXPECT_EQ(classes(80000), "multiple_of_1000 multiple_of_10000 thousands_00_80");
  EXPECT_EQ(classes(200000), "multiple_of_1000 multiple_of_10000 multiple_of_100000 thousands_00_80");
  EXPECT_EQ(classes(80001), "thousands_00_80");
  EXPECT_EQ(classes(180999), "thousands_00_80");
  EXPECT_EQ(classes(900500), "thousands_00_80");
  EXPECT_EQ(classes(1080), "");
  EXPECT_EQ(classes(81000), "multiple_of_1000");
  EXPECT_EQ(classes(999999), "");
  std::map<RareClass, std::int64_t> size;
  for (std::int64_t n = 0; n <= kMaxNumberWords; ++n)
    for (const RareClass c : kRareClasses) size[c] += in_rare_class(n, c);
  EXPECT_EQ(size[RareClass::below_1000], 998);
  EXPECT_EQ(size[RareClass::multiple_of_1000], 999);
  EXPECT_EQ(size[RareClass::multiple_of_10000], 99);
  EXPECT_EQ(size[RareClass::multiple_of_100000], 9);
  EXPECT_EQ(size[RareClass::thousands_00_80], 19 * 1000) << "thousands parts 80, 100, 180, ..., 900, 980";
}

// Half of each stratum (a number's smallest rare class), rounded down, is held out, so about half
// of each class; fixed by the seed; training draws the rest, outside val and test.
TEST(Translation, HalfOfEachRareClassIsHeldOutByTheSeed) {
  const NumberSplits s(0, 10);
  const auto stratum = [](std::int64_t n) -> std::string {
    for (const RareClass c : {RareClass::below_1000, RareClass::multiple_of_100000, RareClass::multiple_of_10000,
                              RareClass::multiple_of_1000, RareClass::thousands_00_80})
      if (in_rare_class(n, c)) return rare_class_name(c);
    return "";
  };
  std::map<std::string, std::pair<std::int64_t, std::int64_t>> strata;  // held out, size
  std::map<RareClass, std::pair<std::int64_t, std::int64_t>> classes;
  std::vector<std::int64_t> held;
  for (std::int64_t n = 0; n <= kMaxNumberWords; ++n) {
    if (s.held_out(n)) held.push_back(n);
    if (s.held_out(n) && s.trains_on(n)) ADD_FAILURE() << n << " is held out and trained on";
    const std::string name = stratum(n);
    if (name.empty()) {
      if (s.held_out(n)) ADD_FAILURE() << n << " is in no rare class, yet held out";
      continue;
    }
    strata[name].first += s.held_out(n);
    ++strata[name].second;
    for (const RareClass c : kRareClasses)
      if (in_rare_class(n, c)) {
        classes[c].first += s.held_out(n);
        ++classes[c].second;
      }
  }
  const std::map<std::string, std::pair<std::int64_t, std::int64_t>> expected{{"below_1000", {499, 998}},
                                                                              {"multiple_of_100000", {4, 9}},
                                                                              {"multiple_of_10000", {45, 90}},
                                                                              {"multiple_of_1000", {450, 900}},
                                                                              {"thousands_00_80", {9490, 18981}}};
  EXPECT_EQ(strata, expected);
  for (const auto& [c, counts] : classes)
    EXPECT_NEAR(counts.first, counts.second / 2.0, 0.05 * static_cast<double>(counts.second) + 1)
        << rare_class_name(c) << ": " << counts.first << " of " << counts.second << " held out";
  EXPECT_EQ(s.held_out_numbers(), held) << "the rare split: every held-out number, ascending";
  EXPECT_EQ(held.size(), 10488u);
  EXPECT_EQ(NumberSplits(0, 10).held_out_numbers(), held) << "fixed by the seed";
  EXPECT_NE(NumberSplits(1, 10).held_out_numbers(), held) << "and another seed holds out others";
  // a class's training members: every member that trains, and nothing else
  for (const RareClass c : kRareClasses) {
    std::vector<std::int64_t> members;
    for (std::int64_t n = 0; n <= kMaxNumberWords; ++n)
      if (in_rare_class(n, c) && s.trains_on(n)) members.push_back(n);
    EXPECT_EQ(s.training(c), members) << rare_class_name(c);
    EXPECT_GT(members.size(), 0u) << rare_class_name(c);
  }
}

// Training numbers are never held out, nor val or test; data.rare_fraction of them come from the
// rare classes, a class at a time. Val and test are drawn as before, by digit count alone.
TEST(Translation, TrainingDrawsNoHeldOutNumberAndTheRareClassesAtTheirFraction) {
  const NumberSplits s(0, 10);
  const auto share = [&](const std::vector<std::int64_t>& drawn, RareClass c) {
    return static_cast<double>(std::count_if(drawn.begin(), drawn.end(), [&](auto n) { return in_rare_class(n, c); })) /
           static_cast<double>(drawn.size());
  };
  Generator g(7);
  const std::vector<std::int64_t> drawn = sample_numbers(g, 200000, Split::train, s, 0.25);
  EXPECT_EQ(std::count_if(drawn.begin(), drawn.end(), [&](auto n) { return !s.trains_on(n); }), 0);
  // a rare draw picks each class a fifth of the time, and lands in `c` as often as that class's
  // training members are in c (a multiple of 100,000 is one of the 49 multiples of 10,000 trained)
  const auto rare_draws_in = [&](RareClass c) {
    double p = 0;
    for (const RareClass from : kRareClasses) {
      const std::vector<std::int64_t>& members = s.training(from);
      p += 0.25 / 5 *
           static_cast<double>(
               std::count_if(members.begin(), members.end(), [&](auto n) { return in_rare_class(n, c); })) /
           static_cast<double>(members.size());
    }
    return p;
  };
  // by digit count, a multiple of 100,000 is one draw in 600,000, a multiple of 1,000 one in 2,000
  EXPECT_NEAR(share(drawn, RareClass::multiple_of_100000), rare_draws_in(RareClass::multiple_of_100000), 0.003);
  EXPECT_NEAR(share(drawn, RareClass::multiple_of_1000), rare_draws_in(RareClass::multiple_of_1000), 0.004);
  EXPECT_NEAR(share(drawn, RareClass::thousands_00_80), rare_draws_in(RareClass::thousands_00_80), 0.006);
  const std::vector<std::int64_t> plain = sample_numbers(g, 200000, Split::train, s, 0.0);
  EXPECT_LT(share(plain, RareClass::multiple_of_1000), 0.002) << "by digit count alone: one draw in 2,000";
  EXPECT_EQ(std::count_if(plain.begin(), plain.end(), [&](auto n) { return !s.trains_on(n); }), 0);
  const std::vector<std::int64_t> val = sample_numbers(g, 1000, Split::val, s, 0.25);
  EXPECT_EQ(std::count_if(val.begin(), val.end(), [&](auto n) { return s.split(n) != Split::val; }), 0);
  EXPECT_LT(share(val, RareClass::multiple_of_1000), 0.01) << "rare_fraction is for training only";
}

// The numbers task's splits: val and test as drawn, domain every number in order, rare the held-out
// numbers; a TSV corpus has val and test only.
TEST(Translation, TheNumbersHaveADomainAndARareSplit) {
  train::Config config = train::Config::parse(std::string("[data]\neval_size = 20\n") + kTinyModel, "tiny.toml");
  Generator g(0);
  TranslationTask task(config, {0, &g, &g});
  EXPECT_EQ(task.splits(), (std::vector<std::string>{"val", "test", "domain", "rare"}));
  const std::vector<std::int64_t> domain = task.split_numbers("domain");
  ASSERT_EQ(domain.size(), 1000000u);
  for (std::size_t i = 0; i < domain.size(); ++i)
    if (domain[i] != static_cast<std::int64_t>(i)) FAIL() << "domain[" << i << "] = " << domain[i];
  EXPECT_EQ(task.split_numbers("rare"), NumberSplits(0, 10).held_out_numbers());
  const std::vector<std::int64_t> val = task.split_numbers("val");
  EXPECT_EQ(val.size(), 20u);
  for (const std::int64_t n : val) EXPECT_EQ(number_split(n, 0, 10), Split::val) << n;
  EXPECT_THROW(task.split_numbers("train"), std::invalid_argument);

  const fs::path dir = scratch_dir("translation_splits");
  const std::string tsv = (dir / "pairs.tsv").string();
  std::ofstream(tsv) << "one\tun\ntwo\tdeux\nthree\ttrois\nfour\tquatre\nfive\tcinq\n";
  train::Config tsv_config = train::Config::parse(
      "[data]\nsource = \"tsv\"\npath = \"" + tsv + "\"\nval_fraction = 0.2\n" + kTinyModel, "tsv.toml");
  TranslationTask tsv_task(tsv_config, {0, &g, &g});
  EXPECT_EQ(tsv_task.splits(), (std::vector<std::string>{"val", "test"}));
  EXPECT_THROW(tsv_task.split_numbers("val"), std::invalid_argument);
  fs::remove_all(dir);
}

// data.rare_fraction is a fraction, and a key of the numbers only.
TEST(Translation, RareFractionIsAFractionOfTheNumbers) {
  EXPECT_EQ(task_error(std::string("[data]\neval_size = 4\nrare_fraction = 1.5\n") + kTinyModel, {}),
            "t.toml:3: data.rare_fraction: 1.5 is outside [0, 1]");
  EXPECT_EQ(task_error(std::string("[data]\neval_size = 4\n") + kTinyModel, {"data.rare_fraction=-0.25"}),
            "t.toml (--set): data.rare_fraction: -0.25 is outside [0, 1]");
  EXPECT_EQ(task_error(std::string("[data]\neval_size = 4\nrare_fraction = 1\n") + kTinyModel, {}), "no exception");
  const fs::path dir = scratch_dir("translation_rare_key");
  const std::string tsv = (dir / "pairs.tsv").string();
  std::ofstream(tsv) << "one\tun\ntwo\tdeux\nthree\ttrois\nfour\tquatre\nfive\tcinq\n";
  const std::string e = task_error(
      "[data]\nsource = \"tsv\"\npath = \"" + tsv + "\"\nval_fraction = 0.2\nrare_fraction = 0.5\n" + kTinyModel, {});
  EXPECT_NE(e.find("t.toml:5: data.rare_fraction is read only when data.source = \"numbers\" (here \"tsv\")"),
            std::string::npos)
      << e;
  fs::remove_all(dir);
}

// decode.val_beam decodes the validation split; decode.beam every other split and translate().
TEST(Translation, ValidationDecodesWithValBeamAndTheOtherSplitsWithBeam) {
  const auto task_with = [](const std::string& decode) {
    train::Config config = train::Config::parse(
        "[data]\neval_size = 24\nmax_len = 12\n[decode]\n" + decode + std::string(kTinyModel), "tiny.toml");
    Generator g(0);
    return std::make_unique<TranslationTask>(config, train::TaskContext{0, &g, &g});
  };
  const auto both = task_with("beam = 4\nval_beam = 1\n");
  const auto greedy = task_with("beam = 1\n");
  const auto beam = task_with("beam = 4\n");
  // the untrained models (one seed, the same weights) decode differently greedily and with beam 4;
  // `beam` validates with its decode.beam, val_beam being unset
  const std::map<std::string, double> val_greedy = greedy->evaluate("val"), val_beam = beam->evaluate("val");
  ASSERT_NE(val_greedy, val_beam) << "a model on which beam 4 and greedy agree cannot tell them apart";
  EXPECT_EQ(both->evaluate("val"), val_greedy);
  EXPECT_EQ(both->evaluate("test"), beam->evaluate("test"));
  const std::vector<std::string> sources{"seventy-one", "two hundred"};
  EXPECT_EQ(both->translate(sources, nullptr), beam->translate(sources, nullptr));
}

TEST(Translation, BeamSearchWithTheCacheMatchesRecomputingAndBeamOneIsGreedy) {
  nn::Seq2SeqOptions o;
  o.src_vocab = o.tgt_vocab = 12;
  o.max_len = 16;
  o.transformer.d_model = 16;
  o.transformer.nhead = 2;
  o.transformer.num_encoder_layers = o.transformer.num_decoder_layers = 1;
  o.transformer.dim_feedforward = 32;
  o.transformer.dropout = 0.0;
  Generator g(5);
  nn::Seq2SeqTransformer model(o, g);
  model.eval();
  const Tensor src = from_vector(std::vector<std::int64_t>{4, 5, 6, 2, 7, 8, 2, 0, 9, 3, 4, 2}, {3, 4});
  const auto ids = [](const Tensor& t) {
    const Tensor c = t.contiguous();
    return std::vector<std::int64_t>(c.data<std::int64_t>(), c.data<std::int64_t>() + c.numel());
  };
  EXPECT_EQ(ids(model.beam_search(src, 1, 8)), ids(model.greedy(src, 8)));
  for (const std::int64_t k : {2, 4}) {
    const Tensor cached = model.beam_search(src, k, 8, 0.6, true);
    EXPECT_EQ(ids(cached), ids(model.beam_search(src, k, 8, 0.6, false))) << "beam " << k;
    EXPECT_EQ(cached.shape(), (Shape{3, 8}));
  }
  EXPECT_THROW(model.beam_search(src, 0, 8), std::invalid_argument);
  // tied output and learned positions: other parameters, the same decoding machinery
  o.tie_output = true;
  o.learned_positions = true;
  nn::Seq2SeqTransformer tied(o, g);
  tied.eval();
  std::vector<std::string> names;
  for (const auto& [n, t] : tied.named_parameters()) names.push_back(n);
  EXPECT_NE(std::find(names.begin(), names.end(), "output_bias"), names.end());
  EXPECT_NE(std::find(names.begin(), names.end(), "positions.weight"), names.end());
  EXPECT_EQ(std::find(names.begin(), names.end(), "generator.weight"), names.end());
  EXPECT_EQ(ids(tied.beam_search(src, 3, 8, 0.6, true)), ids(tied.beam_search(src, 3, 8, 0.6, false)));
}

// Every fact of /architecture comes from the options the model was built from: the defaults, then
// each option turned the other way.
TEST(Translation, CheckpointCarriesTheArchitectureOfItsOptions) {
  const auto checkpoint = [](const std::string& data, const std::string& model, const std::string& rest) {
    Generator init(1), dropout(2);
    train::Config c =
        train::Config::parse("[task]\nname = \"translation\"\n[data]\nmax_len = 12\neval_size = 8\n" + data +
                                 "[model]\nd_model = 16\nnhead = 2\nnum_encoder_layers = 1\n"
                                 "num_decoder_layers = 3\n" +
                                 model + rest,
                             "described.toml");
    TranslationTask task(c, {3, &init, &dropout});
    return saved_and_read(task, "translation_described");
  };
  const train::Checkpoint d = checkpoint("", "", "");
  EXPECT_EQ(fact<std::string>(d, "model"), "seq2seq_transformer");
  EXPECT_EQ(fact<std::int64_t>(d, "d_model"), 16);
  EXPECT_EQ(fact<std::int64_t>(d, "nhead"), 2);
  EXPECT_EQ(d.architecture.count("num_kv_heads"), 0u) << "plain multi-head attention";
  EXPECT_EQ(fact<std::int64_t>(d, "num_encoder_layers"), 1);
  EXPECT_EQ(fact<std::int64_t>(d, "num_decoder_layers"), 3);
  EXPECT_EQ(fact<std::int64_t>(d, "dim_feedforward"), 64);
  EXPECT_EQ(fact<std::string>(d, "activation"), "gelu");
  EXPECT_EQ(fact<std::int64_t>(d, "norm_first"), 1);
  EXPECT_EQ(fact<double>(d, "layer_norm_eps"), 1e-5);
  EXPECT_EQ(fact<std::int64_t>(d, "bias"), 1);
  EXPECT_EQ(fact<std::int64_t>(d, "encoder_final_norm"), 1);
  EXPECT_EQ(fact<std::int64_t>(d, "decoder_final_norm"), 1);
  EXPECT_EQ(fact<double>(d, "embedding_scale"), 4.0);
  EXPECT_EQ(fact<std::string>(d, "positions"), "sinusoidal");
  EXPECT_NE(fact<std::string>(d, "positions_formula").find("PE[t, 2i + 1] = cos"), std::string::npos);
  EXPECT_EQ(fact<std::int64_t>(d, "max_positions"), 13);
  EXPECT_EQ(fact<std::int64_t>(d, "tie_output"), 0);
  EXPECT_EQ(fact<std::int64_t>(d, "pad_id"), Vocabulary::pad);
  EXPECT_EQ(fact<std::int64_t>(d, "bos_id"), Vocabulary::bos);
  EXPECT_EQ(fact<std::int64_t>(d, "eos_id"), Vocabulary::eos);
  EXPECT_EQ(fact<std::int64_t>(d, "unk_id"), Vocabulary::unk);
  EXPECT_EQ(fact<std::string>(d, "source_framing"), "tokens <eos>");
  EXPECT_EQ(fact<std::string>(d, "decoder_input_framing"), "<bos> tokens");
  EXPECT_EQ(fact<std::string>(d, "target_framing"), "tokens <eos>");
  EXPECT_EQ(fact<std::string>(d, "tokenization"), "word");
  EXPECT_EQ(fact<std::string>(d, "unknown_tokens"), "unk_id");
  EXPECT_EQ(fact<std::int64_t>(d, "max_source_tokens"), 11);
  EXPECT_EQ(fact<std::int64_t>(d, "max_target_tokens"), 11);
  EXPECT_EQ(fact<std::int64_t>(d, "max_decode_steps"), 12);
  EXPECT_EQ(fact<std::string>(d, "decoding"), "greedy");
  EXPECT_EQ(d.meta_strings.at(fact<std::string>(d, "source_vocabulary")).at(0), "<pad>");
  EXPECT_EQ(d.meta_strings.at(fact<std::string>(d, "target_vocabulary")).at(3), "<unk>");

  const train::Checkpoint o =
      checkpoint("tokenization = \"char\"\n",
                 "norm_first = false\nactivation = \"relu\"\npositions = \"learned\"\ntie_output = true\n",
                 "[decode]\nbeam = 3\n");
  EXPECT_EQ(fact<std::int64_t>(o, "norm_first"), 0);
  EXPECT_EQ(fact<std::string>(o, "activation"), "relu");
  EXPECT_EQ(fact<std::string>(o, "positions"), "learned");
  EXPECT_EQ(fact<std::int64_t>(o, "tie_output"), 1);
  EXPECT_EQ(fact<std::string>(o, "tokenization"), "char");
  EXPECT_EQ(fact<std::string>(o, "decoding"), "beam");
  EXPECT_EQ(fact<std::int64_t>(o, "decode_beam"), 3);
  // the parameters the facts imply are the ones saved
  std::set<std::string> names;
  for (const auto& [n, t] : o.params) names.insert(n);
  EXPECT_TRUE(names.count("positions.weight") && names.count("output_bias") && !names.count("generator.weight"));
}

}  // namespace
}  // namespace rune::examples
