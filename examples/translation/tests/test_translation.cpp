// The translation example's data and task: tokenization (words, UTF-8 code points), vocabularies,
// the TSV reader and its errors, the number splits, and beam search against greedy decoding. The
// tiny trainings are in test_translation_e2e.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>

#include "autograd/ops.hpp"
#include "examples/translation/corpus.hpp"
#include "examples/translation/translation_task.hpp"
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
  const std::string good = (dir / "good.tsv").string(), bad = (dir / "bad.tsv").string();
  std::ofstream(good) << "Hi.\tSalut.\tCC-BY 2.0 (France) Attribution: tatoeba.org #538123\r\n\nRun!\tCours !\n";
  const std::vector<Pair> pairs = read_tsv_pairs(good);
  ASSERT_EQ(pairs.size(), 2u);
  EXPECT_EQ(pairs[0].source, "Hi.");
  EXPECT_EQ(pairs[0].target, "Salut.") << "extra columns are ignored";
  EXPECT_EQ(pairs[1].target, "Cours !");
  std::ofstream(bad) << "one\tun\ntwo deux\nthree\ttrois\n";
  const std::string e = error_of([&] { read_tsv_pairs(bad); });
  EXPECT_NE(e.find(bad + ":2: expected source<TAB>target"), std::string::npos) << e;
  EXPECT_NE(error_of([&] { read_tsv_pairs((dir / "none.tsv").string()); }).find("cannot be read"), std::string::npos);
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

}  // namespace
}  // namespace rune::examples
