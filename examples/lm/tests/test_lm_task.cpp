// The language model task: its tokenizers and streams (characters counted for bits per character),
// its batches, its metrics against a direct computation, and generation (streamed, reproducible by
// seed, the context refilled when full, the same after a checkpoint round trip).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <numeric>
#include <string>
#include <vector>

#include "autograd/ops.hpp"
#include "autograd/tape.hpp"
#include "examples/lm/lm_task.hpp"
#include "examples/lm/tests/lm_corpus.hpp"
#include "optim/adam.hpp"
#include "tests/described.hpp"
#include "tests/helpers.hpp"
#include "train/config.hpp"

namespace rune::examples {
namespace {

namespace fs = std::filesystem;

// s with its first `from` replaced by `to`.
std::string replaced(std::string s, const std::string& from, const std::string& to) {
  const std::size_t at = s.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  return at == std::string::npos ? s : s.replace(at, from.size(), to);
}

std::int64_t code_points(const std::string& s) {
  std::int64_t n = 0;
  for (const char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

TEST(LmData, CharactersRoundTripAndUnseenOnesAreUnknown) {
  const std::vector<Document> train{{"a", "abé a"}, {"b", "bb"}};
  const LmTokenizer t = LmTokenizer::characters(train);
  // specials, then by frequency: b (3), a and space and é
  EXPECT_EQ(t.vocabulary().token(4), "b");
  EXPECT_EQ(t.size(), 8);
  std::vector<std::uint8_t> chars;
  const std::vector<std::int64_t> ids = t.encode("béz", &chars);
  ASSERT_EQ(ids.size(), 3u);
  EXPECT_EQ(ids[2], text::Vocabulary::unk);
  EXPECT_EQ(chars, (std::vector<std::uint8_t>{1, 1, 1}));
  EXPECT_EQ(t.decode({4, text::Vocabulary::eos, t.vocabulary().id("é"), text::Vocabulary::unk}), "b\né\xef\xbf\xbd");
  const TokenStream s = make_stream(train, t);
  EXPECT_EQ(s.ids.front(), text::Vocabulary::eos);
  EXPECT_EQ(s.ids.size(), 1u + 5 + 1 + 2 + 1);
  EXPECT_EQ(t.decode(s.ids), "\nabé a\nbb\n");
}

TEST(LmData, SubwordTokensCountTheCharactersOfTheirText) {
  std::vector<Document> docs;
  std::vector<std::string> texts;
  for (const std::string& s : lm_sentences(300, 4)) {
    docs.push_back({"", s});
    texts.push_back(s);
  }
  text::SubwordOptions o;
  o.vocab_size = 300;
  const LmTokenizer t = LmTokenizer::subwords(text::SubwordModel::train(texts, o));
  // a character never seen in training falls back to bytes: ☃ is three byte pieces, one character
  const std::vector<Document> held_out{{"x", "the ☃ sat on the mat."}, {"y", "naïve children waited"}};
  const TokenStream s = make_stream(held_out, t);
  std::int64_t want = 1;  // the first <eos>
  for (const Document& d : held_out) want += code_points(d.text) + 1;
  EXPECT_EQ(std::accumulate(s.chars.begin(), s.chars.end(), std::int64_t{0}), want);
  EXPECT_EQ(t.decode(s.ids), "\nthe ☃ sat on the mat.\nnaïve children waited\n");
}

TEST(LmData, ATextFileIsReadLineByLineAndAnEmptyOneIsRefusedByName) {
  const fs::path dir = scratch_dir("lm_documents");
  write_lm_corpus(dir, 10);
  const std::vector<Document> d = read_documents((dir / "train.txt").string());
  EXPECT_EQ(d.size(), 10u);  // the blank line skipped
  EXPECT_EQ(d[4].name, (dir / "train.txt").string() + ":6");
  std::ofstream(dir / "empty.txt") << "  \n\n";
  const std::string e = error_of([&] { (void)read_documents((dir / "empty.txt").string()); });
  EXPECT_NE(e.find("empty.txt holds no text"), std::string::npos) << e;
  const std::string missing = error_of([&] { (void)read_documents((dir / "none.txt").string()); });
  EXPECT_NE(missing.find("none.txt cannot be read"), std::string::npos) << missing;
}

struct Made {
  train::Config config;
  Generator init{1}, dropout{2};
  std::unique_ptr<LmTask> task;
};

std::unique_ptr<Made> make(const std::string& text, const train::Checkpoint* checkpoint = nullptr) {
  auto m = std::make_unique<Made>(Made{train::Config::parse(text, "lm.toml"), Generator(1), Generator(2), nullptr});
  train::TaskContext context{0, &m->init, &m->dropout};
  context.checkpoint = checkpoint;
  m->task = std::make_unique<LmTask>(m->config, context);
  (void)m->config.string("task.name", "lm", "the trainer's");
  (void)m->config.integer("seed", 0, {0}, "the trainer's");
  m->config.check_all_used();
  return m;
}

TEST(LmTask, MetricsAreTheLossOfEveryTokenOfTheSplitPredictedOnce) {
  const fs::path dir = scratch_dir("lm_metrics");
  write_lm_corpus(dir);
  // a context longer than the validation stream: one window, computed here directly
  const auto big = make(tiny_lm_config(dir, "", "positions = \"rotary\"", 2048));
  LmTask& task = *big->task;
  const TokenStream& val = task.stream("val");
  const auto n = static_cast<std::int64_t>(val.ids.size()) - 1;
  ASSERT_LT(n, 2048);
  const std::map<std::string, double> m = task.evaluate("val");
  double nats = 0;
  {
    NoGradGuard no_grad;
    task.model().eval();
    const Tensor in = from_vector(std::vector<std::int64_t>(val.ids.begin(), val.ids.end() - 1), {1, n});
    const Tensor want = from_vector(std::vector<std::int64_t>(val.ids.begin() + 1, val.ids.end()), {n});
    const Tensor lp = to_dtype(log_softmax(reshape(task.lm().forward(in), {n, -1}), -1), DType::float64).contiguous();
    for (std::int64_t t = 0; t < n; ++t) nats -= lp.data<double>()[t * lp.size(1) + want.data<std::int64_t>()[t]];
    task.model().train();
  }
  EXPECT_EQ(m.at("tokens"), static_cast<double>(n));
  EXPECT_NEAR(m.at("loss"), nats / static_cast<double>(n), 1e-5);
  EXPECT_NEAR(m.at("perplexity"), std::exp(m.at("loss")), 1e-9 * m.at("perplexity"));
  // characters: one per token, so bits per character is the loss in bits
  EXPECT_NEAR(m.at("bits_per_char"), m.at("loss") / std::log(2.0), 1e-9);

  // windows of 32 tokens predict the same tokens, each once
  const auto small = make(tiny_lm_config(dir));
  EXPECT_EQ(small->task->evaluate("val").at("tokens"), static_cast<double>(n));
  const auto capped = make(tiny_lm_config(dir, "eval_tokens = 50"));
  EXPECT_EQ(capped->task->evaluate("test").at("tokens"), 50.0);
}

TEST(LmTask, TrainingWindowsAreFollowedByTheirNextTokensAndTheLossFalls) {
  const fs::path dir = scratch_dir("lm_training");
  write_lm_corpus(dir);
  const auto m = make(tiny_lm_config(dir, "batches_per_epoch = 10"));
  LmTask& task = *m->task;
  EXPECT_EQ(task.batches_per_epoch(), 10);
  const train::BatchLoss b = task.train_batch(0, 0);
  EXPECT_EQ(b.items, 16.0 * 32);
  EXPECT_NEAR(b.loss.item(), std::log(static_cast<double>(task.tokenizer().size())), 0.3);  // near uniform at init
  const train::BatchLoss again = task.train_batch(0, 0);  // the same batch: the same loss
  EXPECT_EQ(b.loss.item(), again.loss.item());
  optim::AdamW opt(optim::param_groups_by_weight_decay(task.model().named_parameters(), 1e-2, 0.0, {}));
  const double before = task.evaluate("val").at("loss");
  for (std::int64_t step = 0; step < 60; ++step) {
    const train::BatchLoss l = task.train_batch(step / 10, step % 10);
    l.loss.backward();
    opt.step();
    opt.zero_grad();
  }
  const double after = task.evaluate("val").at("loss");
  EXPECT_LT(after, 0.6 * before) << before << " -> " << after;
}

TEST(LmTask, GenerationStreamsItsTextAndIsReproducibleBySeed) {
  const fs::path dir = scratch_dir("lm_generate");
  write_lm_corpus(dir);
  const auto m = make(tiny_lm_config(dir));
  train::TextGenerator& g = *m->task;
  train::GenerationOptions o;
  o.max_new_tokens = 20;
  o.seed = 5;
  std::string streamed;
  std::vector<std::string> notes;
  const train::GenerationResult a = g.generate(
      "the cat", o, [&](const std::string& s) { streamed += s; }, &notes);
  EXPECT_EQ(a.new_tokens, 20);
  EXPECT_EQ(a.prompt_tokens, 8);  // <eos> and 7 characters
  EXPECT_EQ(streamed, a.text);
  EXPECT_EQ(code_points(a.text), 20);  // a character per token (<eos> a newline)
  EXPECT_TRUE(notes.empty());
  EXPECT_EQ(g.generate("the cat", o, {}, nullptr).text, a.text);
  o.seed = 6;
  EXPECT_NE(g.generate("the cat", o, {}, nullptr).text, a.text);
  // past the context of 32 tokens: refilled from its last half, and said once
  o.max_new_tokens = 80;
  notes.clear();
  const train::GenerationResult long_one = g.generate("☃ the cat", o, {}, &notes);
  EXPECT_EQ(long_one.new_tokens, 80);
  ASSERT_EQ(notes.size(), 2u);
  EXPECT_NE(notes[0].find("1 characters the model has never seen"), std::string::npos) << notes[0];
  EXPECT_NE(notes[1].find("context of 32 tokens filled after 23 new tokens"), std::string::npos) << notes[1];
}

TEST(LmTask, ACheckpointRebuildsTheModelAndItsTokensWithoutTheData) {
  const fs::path dir = scratch_dir("lm_checkpoint");
  write_lm_corpus(dir);
  for (const char* tokens : {"tokenization = \"char\"", "tokenization = \"sentencepiece\"\nvocab_size = 300"}) {
    SCOPED_TRACE(tokens);
    const auto m = make(tiny_lm_config(dir, tokens, "positions = \"rotary\"\nnum_kv_heads = 1"));
    const train::Checkpoint c = saved_and_read(*m->task, "lm");
    EXPECT_EQ(fact<std::string>(c, "model"), "causal_lm");
    EXPECT_EQ(fact<std::string>(c, "positions"), "rotary");
    EXPECT_EQ(fact<std::int64_t>(c, "num_kv_heads"), 1);
    EXPECT_EQ(fact<std::int64_t>(c, "rope_dim"), 8);
    EXPECT_EQ(fact<std::int64_t>(c, "max_positions"), 32);
    // rebuilt from the checkpoint with its data gone
    fs::remove(dir / "train.txt");
    train::Config config =
        train::Config::parse(tiny_lm_config(dir, tokens, "positions = \"rotary\"\nnum_kv_heads = 1"), "lm.toml");
    Generator init(9), dropout(9);
    train::TaskContext context{0, &init, &dropout};
    context.checkpoint = &c;
    context.load_data = false;
    LmTask rebuilt(config, context);
    rebuilt.model().load_state_dict(c.params);
    train::GenerationOptions o;
    o.max_new_tokens = 12;
    o.sampling.temperature = 0.0;
    EXPECT_EQ(rebuilt.generate("a dog", o, {}, nullptr).text, m->task->generate("a dog", o, {}, nullptr).text);
    write_lm_corpus(dir);
  }
}

TEST(LmTask, RefusesConfigsItCannotRunByKey) {
  const fs::path dir = scratch_dir("lm_config");
  write_lm_corpus(dir);
  const auto error = [&](const std::string& text) { return error_of([&] { (void)make(text); }); };
  std::string e = error(tiny_lm_config(dir, "", "", 32, 3));
  EXPECT_NE(e.find("model.nhead"), std::string::npos) << e;
  e = error(tiny_lm_config(dir, "", "num_kv_heads = 3"));
  EXPECT_NE(e.find("model.num_kv_heads"), std::string::npos) << e;
  e = error(tiny_lm_config(dir, "", "positions = \"rotary\"\nrope_dim = 3"));
  EXPECT_NE(e.find("model.rope_dim"), std::string::npos) << e;
  e = error(tiny_lm_config(dir, "", "rope_base = 500.0"));  // learned positions read no rope_base
  EXPECT_NE(e.find("model.rope_base"), std::string::npos) << e;
  e = error(replaced(tiny_lm_config(dir, "", "attention_kernel = \"tiled\""), "dropout = 0.0", "dropout = 0.1"));
  EXPECT_NE(e.find("model.attention_kernel"), std::string::npos) << e;
  EXPECT_NE(e.find("model.dropout = 0"), std::string::npos) << e;
  // 3,000 windows of 2,048 characters: the (T, T) weights alone would take 400 GB
  e = error(
      replaced(tiny_lm_config(dir, "", "attention_kernel = \"plain\"", 2048), "batch_size = 16", "batch_size = 3000"));
  EXPECT_NE(e.find("the tiled kernel, model.attention_kernel = \"tiled\" with model.dropout = 0, keeps none"),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("data.context = 2048"), std::string::npos) << e;
  e = error("[task]\nname = \"lm\"\n[data]\nsource = \"text\"\n");
  EXPECT_NE(e.find("data.train_file"), std::string::npos) << e;
}

}  // namespace
}  // namespace rune::examples
