// The translation task on Bible verses (data.source = "bible") in SentencePiece subwords: the split
// by books, the models kept in the checkpoint and a task rebuilt from it alone, sacreBLEU and chrF
// among the metrics, and the alignment examples (gold links, the words of every token and row).
// The corpus is a small cache file (bible_corpus.hpp): no SWORD module is read.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

#include "examples/translation/tests/bible_corpus.hpp"
#include "examples/translation/translation_task.hpp"
#include "tests/described.hpp"
#include "tests/helpers.hpp"
#include "train/config.hpp"

namespace rune::examples {
namespace {

namespace fs = std::filesystem;

std::string config_text(const std::string& cache, const std::string& extra = "", int vocab_size = 300) {
  return "[data]\nsource = \"bible\"\ntokenization = \"sentencepiece\"\n"
         "vocab_size = " +
         std::to_string(vocab_size) + "\nbatch_size = 16\nmax_len = 64\ncache = \"" + cache + "\"\n" + extra +
         "[model]\nd_model = 16\nnhead = 2\nnum_encoder_layers = 1\nnum_decoder_layers = 2\ndim_feedforward = 32\n";
}

std::string corpus(const std::string& name) {
  const std::string path = (scratch_dir(name) / "bible.tsv").string();
  testing_corpus::write(path);
  return path;
}

TEST(BibleTask, SplitsByBookAndKeepsTheGoldLinksOfValAndTest) {
  const std::string cache = corpus("bible_task_split");
  train::Config c = train::Config::parse(config_text(cache), "bible.toml");
  Generator init(1), dropout(2);
  TranslationTask task(c, {0, &init, &dropout});
  c.check_all_used();
  EXPECT_EQ(task.batches_per_epoch(), 19) << "300 Genesis verses in batches of 16";
  EXPECT_EQ(task.prepare_alignment("val", 0), 12) << "Joshua";
  EXPECT_EQ(task.prepare_alignment("test", 0), 10) << "Acts";
  EXPECT_EQ(task.prepare_alignment("test", 4), 4) << "--limit";
  const analysis::AlignmentExample e = task.alignment_example(2);
  EXPECT_EQ(e.name, "Acts 1:3");
  ASSERT_FALSE(e.source_words.empty());
  ASSERT_EQ(e.source_words.size(), e.target_words.size()) << "the corpus is word for word";
  // word i <-> word i, and every other pair of words that share a lexicon entry
  for (std::size_t i = 0; i < e.source_words.size(); ++i)
    EXPECT_TRUE(std::count(e.gold.begin(), e.gold.end(), std::pair<int, int>(static_cast<int>(i), static_cast<int>(i))))
        << i;
  // a word per token of the source (then -1 for <eos>) and per decoder row (the last predicts <eos>)
  ASSERT_EQ(e.source_word_of.size(), e.attention.source.size());
  ASSERT_EQ(e.target_word_of.size(), e.attention.target.size());
  EXPECT_EQ(e.source_word_of.back(), -1);
  EXPECT_EQ(e.target_word_of.back(), -1);
  EXPECT_EQ(e.source_word_of.front(), 0);
  EXPECT_EQ(*std::max_element(e.source_word_of.begin(), e.source_word_of.end()),
            static_cast<int>(e.source_words.size()) - 1);
  EXPECT_EQ(*std::max_element(e.target_word_of.begin(), e.target_word_of.end()),
            static_cast<int>(e.target_words.size()) - 1);
  EXPECT_TRUE(std::is_sorted(e.target_word_of.begin(), e.target_word_of.end() - 1));
  const auto cross = std::count_if(e.attention.layers.begin(), e.attention.layers.end(),
                                   [](const auto& l) { return l.kind == "cross"; });
  EXPECT_EQ(cross, 2) << "one per decoder layer";
  for (const auto& l : e.attention.layers)
    if (l.kind == "cross") {
      EXPECT_EQ(l.weights.size(1), static_cast<std::int64_t>(e.target_word_of.size()));
      EXPECT_EQ(l.weights.size(2), static_cast<std::int64_t>(e.source_word_of.size()));
    }
  const std::map<std::string, double> m = task.evaluate("test");
  for (const char* k : {"sacrebleu", "chrf", "bleu", "exact_match", "loss"}) EXPECT_TRUE(m.count(k)) << k;
  EXPECT_EQ(task.primary_metric(), "sacrebleu");
}

TEST(BibleTask, TheCheckpointCarriesTheSubwordModelsAndTranslatesAlone) {
  const std::string cache = corpus("bible_task_checkpoint");
  train::Config c = train::Config::parse(config_text(cache), "bible.toml");
  Generator init(1), dropout(2);
  TranslationTask task(c, {0, &init, &dropout});
  const train::Checkpoint saved = saved_and_read(task, "bible_task_saved");
  ASSERT_EQ(saved.meta_bytes.count("source_subwords"), 1u);
  ASSERT_EQ(saved.meta_bytes.count("target_subwords"), 1u);
  EXPECT_EQ(saved.meta_strings.at("source_vocabulary").size(), 300u) << "the pieces, in id order";
  EXPECT_EQ(std::get<std::string>(saved.architecture.at("tokenization")), "sentencepiece");
  const std::vector<std::string> sources{"the king said to David", "Paul prayed in the temple"};
  const std::vector<std::string> before = task.translate(sources, nullptr);

  fs::remove(cache);  // the rebuilt task reads no data: the checkpoint holds its tokenizers
  train::Config again = train::Config::parse(config_text(cache), "bible.toml");
  Generator init2(7), dropout2(8);
  TranslationTask rebuilt(again, {0, &init2, &dropout2, false, &saved, /*load_data=*/false});
  rebuilt.load_parameters(saved, "saved.h5");
  EXPECT_EQ(rebuilt.translate(sources, nullptr), before);
  std::vector<std::string> notes;
  rebuilt.translate({"Zebulun’s 🙂"}, &notes);
  for (const std::string& n : notes) EXPECT_EQ(n.find("not in the model's"), std::string::npos) << n;
}

TEST(BibleTask, ConfigErrorsNameTheirKey) {
  const std::string cache = corpus("bible_task_errors");
  Generator g(0);
  std::string err = error_of([&] {
    train::Config c = train::Config::parse(config_text(cache, "", 90000), "bible.toml");
    TranslationTask task(c, {0, &g, &g});
  });
  EXPECT_NE(err.find("data.vocab_size"), std::string::npos) << err;
  EXPECT_NE(err.find("too large for the training text"), std::string::npos) << err;
  err = error_of([&] {
    train::Config c = train::Config::parse("[data]\ntokenization = \"sentencepiece\"\n", "numbers.toml");
    TranslationTask task(c, {0, &g, &g});
  });
  EXPECT_NE(err.find("data.tokenization"), std::string::npos) << err;
  EXPECT_NE(err.find("it needs data.source = \"tsv\" or \"bible\""), std::string::npos) << err;
  err = error_of([&] {
    train::Config c = train::Config::parse(config_text(cache, "min_freq = 2\n"), "bible.toml");
    TranslationTask task(c, {0, &g, &g});
    c.check_all_used();
  });
  EXPECT_NE(err.find("data.min_freq is read only when data.tokenization = \"word\" or \"char\""), std::string::npos)
      << err;
}

}  // namespace
}  // namespace rune::examples
