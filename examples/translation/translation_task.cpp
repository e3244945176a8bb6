#include "examples/translation/translation_task.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <numeric>

#include <nlohmann/json.hpp>

#include "analysis/attention_recorder.hpp"
#include "analysis/seq2seq_batch.hpp"
#include "autograd/ops.hpp"
#include "autograd/tape.hpp"
#include "examples/translation/number_words.hpp"
#include "onnx/export.hpp"
#include "report/csv.hpp"
#include "text/bible.hpp"
#include "text/bleu.hpp"
#include "text/sacrebleu.hpp"
#include "train/distributed.hpp"
#include "train/files.hpp"
#include "train/model_config.hpp"
#include "train/progress.hpp"

namespace rune::examples {

namespace {
constexpr std::int64_t kBucketBatches = 64;  // batches sorted by length together
constexpr std::size_t kEvalBatch = 256;      // sentences evaluated together

// A Fisher-Yates shuffle driven by our Generator (std::shuffle's results differ between
// standard libraries; these do not).
template <class T>
void shuffle(std::vector<T>& v, Generator& g) {
  for (std::size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[g.below(i)]);
}

// Whether the (T, V) logits of a teacher-forced pass over one target, `want` (its tokens, <eos>,
// then padding), put want[t] first at every position up to <eos>, ahead of every other token by
// kTieMargin.
constexpr float kTieMargin = 1e-2f;
bool greedy_follows(const float* logits, const std::int64_t* want, std::int64_t T, std::int64_t V) {
  for (std::int64_t t = 0; t < T; ++t) {
    const float* row = logits + t * V;
    for (std::int64_t v = 0; v < V; ++v)
      if (v != want[t] && row[v] > row[want[t]] - kTieMargin) return false;
    if (want[t] == Vocabulary::eos) return true;
  }
  return false;
}

// A warning about the data, on stderr where `rune train`, `eval` and the rest show it; none if empty.
void warn(const std::string& warning) {
  if (!warning.empty()) std::fprintf(stderr, "%s\n", warning.c_str());
}
}  // namespace

TranslationTask::TranslationTask(train::Config& c, const train::TaskContext& context) : seed_(context.seed) {
  source_ = c.string("data.source", "numbers", {"numbers", "tsv", "bible"},
                     "the sentence pairs: numbers (English number words to French ones, 0..999,999, generated), "
                     "tsv (a file of source<TAB>target lines) or bible (English to Spanish verses of two SWORD "
                     "Bible modules, split by whole books: docs/bible.md)");
  tokenization_ = tokenization_from_name(
      c.string("data.tokenization", "word", {"word", "char", "sentencepiece"},
               "tokens: words (split at spaces), characters (UTF-8 code points) or sentencepiece (subwords: a "
               "SentencePiece model per language, trained on the training split, kept in every checkpoint)"));
  std::int64_t min_freq = 1;
  text::SubwordOptions subword_options;
  if (tokenization_ == Tokenization::subword) {
    subword_options.vocab_size = c.integer("data.vocab_size", 8000, {300},
                                           "SentencePiece pieces per language, 4 specials and 256 bytes included");
    subword_options.model_type =
        c.string("data.subword_model", "unigram", {"unigram", "bpe"}, "the SentencePiece model: unigram or bpe");
    c.unused_here({"data.min_freq"}, "data.tokenization", {"word", "char"});
  } else {
    min_freq = c.integer("data.min_freq", 1, {1}, "tokens seen fewer times in training become <unk>");
    c.unused_here({"data.vocab_size", "data.subword_model"}, "data.tokenization", {"sentencepiece"});
  }
  max_len_ = c.integer("data.max_len", 64, {2}, "tokens kept of each sentence, <eos> included (longer ones are cut)");
  batch_size_ = c.integer("data.batch_size", 64, {1}, "sentence pairs per training batch");
  label_smoothing_ =
      c.number("train.label_smoothing", 0.1, {0.0, 1.0, true}, "label smoothing of the cross-entropy loss");
  beam_ = c.integer("decode.beam", 1, {1, 64}, "beam width of decoding in evaluation and rune translate (1: greedy)");
  length_penalty_ =
      c.number("decode.length_penalty", 0.6, {0.0, 5.0},
               "beam search's length penalty alpha: scores are divided by ((5 + length) / 6)^alpha (GNMT)");
  val_beam_ = c.integer("decode.val_beam", beam_, {1, 64},
                        "beam width when scoring the validation split (during training, it chooses the best "
                        "checkpoint); decode.beam unless set; 1 (greedy) is the fastest");
  std::string path, cache, source_module, target_module, sword_path;
  double val_fraction = 0, test_fraction = 0;
  eval_size_ = permille_ = 0;
  batches_per_epoch_ = 0;  // tsv and bible: counted from the data, when it is read
  if (source_ == "numbers") {
    batches_per_epoch_ =
        c.integer("data.batches_per_epoch", 200, {1}, "training batches per epoch, each drawn from the seed");
    eval_size_ =
        c.integer("data.eval_size", 1000, {1}, "numbers in the validation split, and as many in the test split");
    permille_ = c.integer("data.split_permille", 10, {1, 333},
                          "per mille of all numbers held out for test, and as many for validation (never trained on)");
    rare_fraction_ = c.number("data.rare_fraction", 0.25, {0.0, 1.0},
                              "fraction of the training numbers drawn from the rare classes (1..999, multiples of "
                              "1,000, 10,000 and 100,000, thousands part ending in 00 or 80; a class at a time, "
                              "half of each held out) instead of by digit count");
  } else if (source_ == "tsv") {
    path = c.string("data.path", "", "the TSV file: one source<TAB>target pair per line");
    val_fraction = c.number("data.val_fraction", 0.05, {0.0, 0.5}, "the fraction of the lines held out for validation");
    test_fraction = c.number("data.test_fraction", 0.05, {0.0, 0.5}, "the fraction of the lines held out for test");
  } else {
    cache = c.string("data.cache", "data/bible/engWEB2015eb-spaRV1909eb.tsv",
                     "the verse pairs as read once from the SWORD modules (written when missing or of other modules)");
    source_module = c.string("data.source_module", "engWEB2015eb", "the SWORD module of the source language");
    target_module = c.string("data.target_module", "spaRV1909eb", "the SWORD module of the target language");
    sword_path =
        c.string("data.sword_path", "", "the folder of the SWORD modules (empty: $SWORD_PATH or /usr/share/sword)");
  }
  c.unused_here({"data.batches_per_epoch", "data.eval_size", "data.split_permille", "data.rare_fraction"},
                "data.source", {"numbers"});
  c.unused_here({"data.path", "data.val_fraction", "data.test_fraction"}, "data.source", {"tsv"});
  c.unused_here({"data.cache", "data.source_module", "data.target_module", "data.sword_path"}, "data.source",
                {"bible"});
  nn::Seq2SeqOptions o;
  o.transformer = train::read_transformer_options(c, 128, 8, context.dropout);
  train::read_embedding_options(c, o);
  if (context.describe_only) return;  // rune config: the keys are declared; no data is read
  if (source_ == "numbers" && tokenization_ == Tokenization::subword)
    c.fail("data.tokenization", "sentencepiece is trained on a corpus: it needs data.source = \"tsv\" or \"bible\"");

  std::vector<std::vector<std::string>> src_texts, tgt_texts;  // of the training split
  if (!context.load_data) {
    if (!context.checkpoint) throw std::logic_error("TranslationTask: no data and no checkpoint to build from");
  } else if (source_ == "numbers") {
    // the validation and test pairs, and an epoch's (sorted into batches, a copy): two strings each
    const double pairs = 2 * static_cast<double>(eval_size_) +
                         2 * static_cast<double>(batch_size_) * static_cast<double>(batches_per_epoch_);
    train::check_memory(c, train::count_text(pairs) + " sentence pairs", 2 * sizeof(std::string) * pairs,
                        {{"data.eval_size", eval_size_},
                         {"data.batch_size", batch_size_},
                         {"data.batches_per_epoch", batches_per_epoch_}});
    numbers_ = std::make_shared<const NumberSplits>(seed_, permille_);
    Generator val_gen(seed_ * 31 + 1), test_gen(seed_ * 31 + 2), vocab_gen(seed_ * 31 + 3);
    val_numbers_ = sample_numbers(val_gen, eval_size_, Split::val, *numbers_, rare_fraction_);
    test_numbers_ = sample_numbers(test_gen, eval_size_, Split::test, *numbers_, rare_fraction_);
    for (const std::int64_t n : val_numbers_) val_.push_back(number_pair(n));
    for (const std::int64_t n : test_numbers_) test_.push_back(number_pair(n));
    std::vector<Pair> drawn = val_;  // checked for length below
    drawn.insert(drawn.end(), test_.begin(), test_.end());
    if (!context.checkpoint)
      for (const std::int64_t n : sample_numbers(vocab_gen, 20000, Split::train, *numbers_, rare_fraction_)) {
        const Pair p = number_pair(n);
        src_texts.push_back(tokenize(p.source, tokenization_));
        tgt_texts.push_back(tokenize(p.target, tokenization_));
        drawn.push_back(p);
      }
    // words never exceed data.max_len's default; characters do (a test checks every number's words)
    warn(long_pairs_warning(drawn, tokenization_, max_len_, "the number words (a sample)"));
  } else if (source_ == "bible") {
    for (text::VersePair& v : text::load_bible_pairs(cache, source_module, target_module, sword_path)) {
      Pair p(std::move(v.source), std::move(v.target));
      p.name = v.book + " " + std::to_string(v.chapter) + ":" + std::to_string(v.verse);
      const text::BibleSplit split = text::bible_split(v.book);
      if (split != text::BibleSplit::train) p.alignment = text::strongs_alignment(v.source_strongs, v.target_strongs);
      (split == text::BibleSplit::train ? train_
       : split == text::BibleSplit::val ? val_
                                        : test_)
          .push_back(std::move(p));
    }
    batches_per_epoch_ = static_cast<std::int64_t>((train_.size() + static_cast<std::size_t>(batch_size_) - 1) /
                                                   static_cast<std::size_t>(batch_size_));
  } else {
    if (path.empty()) c.fail("data.path", "data.source = \"tsv\" needs the file's path");
    std::vector<Pair> pairs = read_tsv_pairs(path);
    Generator split_gen(seed_ * 31 + 4);
    shuffle(pairs, split_gen);
    const auto n_test = static_cast<std::size_t>(test_fraction * static_cast<double>(pairs.size()));
    const auto n_val = static_cast<std::size_t>(val_fraction * static_cast<double>(pairs.size()));
    test_.assign(pairs.begin(), pairs.begin() + static_cast<std::ptrdiff_t>(n_test));
    val_.assign(pairs.begin() + static_cast<std::ptrdiff_t>(n_test),
                pairs.begin() + static_cast<std::ptrdiff_t>(n_test + n_val));
    train_.assign(pairs.begin() + static_cast<std::ptrdiff_t>(n_test + n_val), pairs.end());
    if (train_.empty() || val_.empty()) c.fail("data.path", path + " is too small for its splits");
    batches_per_epoch_ = static_cast<std::int64_t>((train_.size() + static_cast<std::size_t>(batch_size_) - 1) /
                                                   static_cast<std::size_t>(batch_size_));
  }
  if (tokenization_ == Tokenization::subword) {
    // a SentencePiece model per language: from the checkpoint, or trained on the training split
    if (context.checkpoint) {
      for (const char* key : {"source_subwords", "target_subwords"})
        if (!context.checkpoint->meta_bytes.count(key))
          throw std::runtime_error("the checkpoint holds no /meta/" + std::string(key) +
                                   " (the SentencePiece model of data.tokenization = \"sentencepiece\")");
      src_subwords_ =
          text::SubwordModel::from_bytes(context.checkpoint->meta_bytes.at("source_subwords"), "/meta/source_subwords");
      tgt_subwords_ =
          text::SubwordModel::from_bytes(context.checkpoint->meta_bytes.at("target_subwords"), "/meta/target_subwords");
    } else {
      std::vector<std::string> sources, targets;
      for (const Pair& p : train_) {
        sources.push_back(p.source);
        targets.push_back(p.target);
      }
      try {
        src_subwords_ = text::SubwordModel::train(sources, subword_options);
        tgt_subwords_ = text::SubwordModel::train(targets, subword_options);
      } catch (const std::invalid_argument& e) {
        c.fail("data.vocab_size", e.what());
      }
    }
  }
  if (source_ != "numbers" && context.load_data) {
    std::vector<Pair> all = train_;
    all.insert(all.end(), val_.begin(), val_.end());
    all.insert(all.end(), test_.begin(), test_.end());
    // in the file's order, so that the first long pair named is the first in the file
    std::stable_sort(all.begin(), all.end(), [](const Pair& a, const Pair& b) { return a.line < b.line; });
    warn(long_pairs_warning(
        all, [this](const std::string& t, bool source) { return tokens(t, source).size(); }, max_len_,
        source_ == "bible" ? "the Bible verses" : path));
    if (!context.checkpoint)
      for (const Pair& p : train_) {
        src_texts.push_back(tokens(p.source, true));
        tgt_texts.push_back(tokens(p.target, false));
      }
  }
  if (tokenization_ == Tokenization::subword) {
    src_vocab_ = Vocabulary(src_subwords_->pieces());
    tgt_vocab_ = Vocabulary(tgt_subwords_->pieces());
  } else if (context.checkpoint) {
    // the vocabularies the model was trained with, whatever the data holds now
    for (const char* key : {"source_vocabulary", "target_vocabulary"})
      if (!context.checkpoint->meta_strings.count(key))
        throw std::runtime_error("the checkpoint holds no /meta/" + std::string(key) + ": it cannot translate");
    try {
      src_vocab_ = Vocabulary(context.checkpoint->meta_strings.at("source_vocabulary"));
      tgt_vocab_ = Vocabulary(context.checkpoint->meta_strings.at("target_vocabulary"));
    } catch (const std::exception& e) {
      throw std::runtime_error("the checkpoint's vocabulary is refused: " + std::string(e.what()));
    }
  } else {
    src_vocab_ = Vocabulary::build(src_texts, min_freq);
    tgt_vocab_ = Vocabulary::build(tgt_texts, min_freq);
  }

  o.src_vocab = src_vocab_.size();
  o.tgt_vocab = tgt_vocab_.size();
  o.pad_id = Vocabulary::pad;
  o.bos_id = Vocabulary::bos;
  o.eos_id = Vocabulary::eos;
  o.max_len = max_len_ + 1;
  // tokens of the longest training sentence, <eos> included (all max_len_ when unread)
  std::size_t longest = src_texts.empty() ? static_cast<std::size_t>(max_len_) : 0;
  for (const auto* texts : {&src_texts, &tgt_texts})
    for (const auto& t : *texts) longest = std::max(longest, t.size() + 1);
  train::check_model_memory(c, o, batch_size_, max_len_,
                            std::min<std::int64_t>(max_len_, static_cast<std::int64_t>(longest)));
  model_ = std::make_shared<nn::Seq2SeqTransformer>(o, *context.init);
}

TranslationTask::Batch TranslationTask::encode(const std::vector<Pair>& pairs) const {
  // source: tokens + eos; decoder input: bos + tokens; target: tokens + eos; padded to the batch's longest
  std::vector<std::vector<std::int64_t>> src, tgt;
  std::size_t S = 1, T = 1;
  for (const Pair& p : pairs) {
    std::vector<std::int64_t> s, t;
    for (const auto& tok : tokens(p.source, true)) s.push_back(src_vocab_.id(tok));
    for (const auto& tok : tokens(p.target, false)) t.push_back(tgt_vocab_.id(tok));
    s.resize(std::min<std::size_t>(s.size(), static_cast<std::size_t>(max_len_ - 1)));
    t.resize(std::min<std::size_t>(t.size(), static_cast<std::size_t>(max_len_ - 1)));
    s.push_back(Vocabulary::eos);
    S = std::max(S, s.size());
    T = std::max(T, t.size() + 1);
    src.push_back(std::move(s));
    tgt.push_back(std::move(t));
  }
  const auto B = static_cast<std::int64_t>(pairs.size());
  std::vector<std::int64_t> s_ids(static_cast<std::size_t>(B) * S, Vocabulary::pad),
      in_ids(static_cast<std::size_t>(B) * T, Vocabulary::pad),
      out_ids(static_cast<std::size_t>(B) * T, Vocabulary::pad);
  for (std::size_t b = 0; b < pairs.size(); ++b) {
    std::copy(src[b].begin(), src[b].end(), s_ids.begin() + static_cast<std::ptrdiff_t>(b * S));
    in_ids[b * T] = Vocabulary::bos;
    for (std::size_t i = 0; i < tgt[b].size(); ++i) {
      in_ids[b * T + i + 1] = tgt[b][i];
      out_ids[b * T + i] = tgt[b][i];
    }
    out_ids[b * T + tgt[b].size()] = Vocabulary::eos;
  }
  return {from_vector(s_ids, {B, static_cast<std::int64_t>(S)}), from_vector(in_ids, {B, static_cast<std::int64_t>(T)}),
          from_vector(out_ids, {B, static_cast<std::int64_t>(T)})};
}

void TranslationTask::prepare_epoch(std::int64_t epoch) {
  if (prepared_epoch_ == epoch) return;
  Generator g(seed_ * 1000003ULL + static_cast<std::uint64_t>(epoch) * 7919ULL + 17);
  std::vector<Pair> pairs;
  if (source_ == "numbers") {
    for (const std::int64_t n :
         sample_numbers(g, batch_size_ * batches_per_epoch_, Split::train, *numbers_, rare_fraction_))
      pairs.push_back(number_pair(n));
  } else {
    pairs = train_;
    shuffle(pairs, g);
  }
  // length buckets: within each run of kBucketBatches batches, sort by source length, so a batch
  // holds sentences of similar length and little padding; then shuffle the batches' order
  // (each source is tokenized once: subword encoding is too slow to repeat in every comparison)
  std::vector<std::size_t> length(pairs.size()), order(pairs.size());
  for (std::size_t i = 0; i < pairs.size(); ++i) length[i] = tokens(pairs[i].source, true).size();
  std::iota(order.begin(), order.end(), std::size_t{0});
  const std::size_t chunk = static_cast<std::size_t>(batch_size_ * kBucketBatches);
  for (std::size_t at = 0; at < order.size(); at += chunk)
    std::stable_sort(order.begin() + static_cast<std::ptrdiff_t>(at),
                     order.begin() + static_cast<std::ptrdiff_t>(std::min(order.size(), at + chunk)),
                     [&](std::size_t a, std::size_t b) { return length[a] < length[b]; });
  std::vector<Pair> sorted;
  sorted.reserve(pairs.size());
  for (const std::size_t i : order) sorted.push_back(std::move(pairs[i]));
  pairs = std::move(sorted);
  epoch_batches_.clear();
  for (std::size_t at = 0; at < pairs.size(); at += static_cast<std::size_t>(batch_size_))
    epoch_batches_.emplace_back(pairs.begin() + static_cast<std::ptrdiff_t>(at),
                                pairs.begin() + static_cast<std::ptrdiff_t>(std::min(
                                                    pairs.size(), at + static_cast<std::size_t>(batch_size_))));
  shuffle(epoch_batches_, g);
  prepared_epoch_ = epoch;
}

train::BatchLoss TranslationTask::train_batch(std::int64_t epoch, std::int64_t index) {
  prepare_epoch(epoch);
  const std::vector<Pair>& all = epoch_batches_.at(static_cast<std::size_t>(index));
  const auto [begin, end] = shard().rows(static_cast<std::int64_t>(all.size()));
  if (begin == end) return {};  // more ranks than this batch has pairs
  const Batch b = encode(std::vector<Pair>(all.begin() + begin, all.begin() + end));
  const Tensor logits = model_->forward(b.src, b.tgt_in);  // (B, T, V)
  CrossEntropyOptions o;
  o.ignore_index = Vocabulary::pad;
  o.label_smoothing = label_smoothing_;
  const Tensor loss = cross_entropy(reshape(logits, {-1, logits.size(2)}), reshape(b.tgt_out, {-1}), o);
  const double tokens = sum(to_dtype(ne(b.tgt_out, full({}, Vocabulary::pad, DType::int64)), DType::float64)).item();
  return {loss, tokens};
}

void TranslationTask::note_reading(std::vector<std::string>& notes, std::size_t number, const std::string& text,
                                   bool source) const {
  const Vocabulary& vocab = source ? src_vocab_ : tgt_vocab_;
  const std::vector<std::string> read = tokens(text, source);
  const std::string sentence = "sentence " + std::to_string(number);
  const auto n = static_cast<std::int64_t>(read.size());
  if (n >= max_len_)
    notes.push_back(sentence + (source ? "" : ": the target") + " (\"" + preview(text) + "\") has " +
                    std::to_string(n) + " tokens; the model " + (source ? "reads " : "scores ") +
                    std::to_string(max_len_ - 1) + " of them (data.max_len = " + std::to_string(max_len_) +
                    ", <eos> included): the rest is ignored");
  std::vector<std::string> unknown;  // distinct, in order of appearance
  for (const std::string& t : read)
    if (vocab.id(t) == Vocabulary::unk && std::find(unknown.begin(), unknown.end(), t) == unknown.end())
      unknown.push_back(t);
  if (unknown.empty()) return;
  std::string words;
  for (const std::string& w : unknown) words += (words.empty() ? "\"" : ", \"") + w + "\"";
  notes.push_back(sentence + ": " + words + (unknown.size() == 1 ? " is" : " are") + " not in the model's " +
                  (source ? "source" : "target") + " vocabulary (read as <unk>)");
}

std::vector<std::string> TranslationTask::translate(const std::vector<std::string>& sources,
                                                    std::vector<std::string>* notes) {
  return decode_texts(sources, notes, beam_);
}

std::vector<std::string> TranslationTask::decode_texts(const std::vector<std::string>& sources,
                                                       std::vector<std::string>* notes, std::int64_t beam) {
  NoGradGuard no_grad;
  model_->eval();
  std::vector<Pair> pairs;
  for (const auto& s : sources) pairs.push_back({s, ""});
  const Batch b = encode(pairs);
  const std::int64_t steps = max_len_;
  const Tensor ids =
      (beam > 1 ? model_->beam_search(b.src, beam, steps, length_penalty_) : model_->greedy(b.src, steps)).contiguous();
  std::vector<std::string> out;
  for (std::int64_t i = 0; i < ids.size(0); ++i) {
    std::vector<std::string> tokens;
    bool ended = false;  // by <eos>, rather than by running out of steps
    for (std::int64_t t = 0; t < ids.size(1); ++t) {
      const std::int64_t id = ids.data<std::int64_t>()[i * ids.size(1) + t];
      if ((ended = id == Vocabulary::eos || id == Vocabulary::pad)) break;
      tokens.push_back(tgt_vocab_.token(id));
    }
    out.push_back(detokenize(tokens));
    if (!notes) continue;
    const auto number = static_cast<std::size_t>(i) + 1;
    note_reading(*notes, number, sources[static_cast<std::size_t>(i)], true);
    if (!ended)
      notes->push_back("sentence " + std::to_string(number) + ": the translation reached data.max_len = " +
                       std::to_string(max_len_) + " tokens without <eos>: it is cut there");
  }
  model_->train();
  return out;
}

std::vector<double> TranslationTask::log_probability(const std::vector<std::pair<std::string, std::string>>& texts,
                                                     std::vector<std::string>* notes) {
  model_->eval();
  std::vector<Pair> pairs;
  for (const auto& [source, target] : texts) pairs.push_back({source, target});
  const Batch b = encode(pairs);
  const std::vector<double> out = model_->log_probability(b.src, b.tgt_in, b.tgt_out);
  if (notes)
    for (std::size_t i = 0; i < texts.size(); ++i) {
      note_reading(*notes, i + 1, texts[i].first, true);
      note_reading(*notes, i + 1, texts[i].second, false);
    }
  model_->train();
  return out;
}

std::vector<std::string> TranslationTask::tokens(const std::string& text, bool source) const {
  if (tokenization_ == Tokenization::subword) return (source ? src_subwords_ : tgt_subwords_)->encode(text);
  return tokenize(text, tokenization_);
}

std::string TranslationTask::detokenize(const std::vector<std::string>& target_tokens) const {
  if (tokenization_ == Tokenization::subword) return tgt_subwords_->decode(target_tokens);
  return join(target_tokens, tokenization_);
}

analysis::TokenAttention TranslationTask::attention_maps(const std::string& sentence) {
  const std::string output = translate({sentence}, nullptr).front();
  analysis::TokenAttention maps = forced_attention(sentence, output);
  maps.output = output;
  return maps;
}

analysis::TokenAttention TranslationTask::forced_attention(const std::string& source, const std::string& target) {
  analysis::TokenAttention maps;
  NoGradGuard no_grad;
  model_->eval();
  // the maps in the order they are drawn: every encoder layer's, then the decoder's self- and
  // cross-attention
  struct Watched {
    std::string kind;
    std::int64_t layer;
    std::string path;
  };
  std::vector<Watched> watched;
  const auto& enc = *model_->transformer->encoder->layers;
  const auto& dec = *model_->transformer->decoder->layers;
  for (std::size_t l = 0; l < enc.size(); ++l)
    watched.push_back({"encoder self", static_cast<std::int64_t>(l),
                       "transformer.encoder.layers." + std::to_string(l) + ".self_attn"});
  for (std::size_t l = 0; l < dec.size(); ++l)
    watched.push_back({"decoder self", static_cast<std::int64_t>(l),
                       "transformer.decoder.layers." + std::to_string(l) + ".self_attn"});
  for (std::size_t l = 0; l < dec.size(); ++l)
    watched.push_back(
        {"cross", static_cast<std::int64_t>(l), "transformer.decoder.layers." + std::to_string(l) + ".multihead_attn"});
  const Batch b = encode({{source, target}});
  {
    const analysis::AttentionRecorder recorder(*model_);
    model_->forward(b.src, b.tgt_in);
    for (const Watched& w : watched) {
      const Tensor& weights = recorder.weights(w.path);  // (1, H, Tq, Tk)
      maps.layers.push_back({w.kind, w.layer, reshape(weights, {weights.size(1), weights.size(2), weights.size(3)})});
    }
  }
  model_->train();
  for (std::int64_t i = 0; i < b.src.size(1); ++i)
    maps.source.push_back(src_vocab_.token(b.src.data<std::int64_t>()[i]));
  for (std::int64_t i = 0; i < b.tgt_in.size(1); ++i)
    maps.target.push_back(tgt_vocab_.token(b.tgt_in.data<std::int64_t>()[i]));
  return maps;
}

std::int64_t TranslationTask::prepare_alignment(const std::string& split, std::int64_t limit) {
  const std::vector<Pair>& data = split == "test" ? test_ : val_;
  aligned_.clear();
  for (const Pair& p : data)
    if (!p.alignment.empty() && (limit <= 0 || static_cast<std::int64_t>(aligned_.size()) < limit))
      aligned_.push_back(&p);
  return static_cast<std::int64_t>(aligned_.size());
}

analysis::AlignmentExample TranslationTask::alignment_example(std::int64_t index) {
  const Pair& p = *aligned_.at(static_cast<std::size_t>(index));
  analysis::AlignmentExample e;
  e.name = p.name;
  e.source_words = text::split_words(p.source);
  e.target_words = text::split_words(p.target);
  e.gold = p.alignment;
  e.attention = forced_attention(p.source, p.target);
  // the words of the tokens the model read: encode() keeps max_len - 1 of each side
  const auto word_of = [&](const std::string& text, bool source) {
    std::vector<std::string> read = tokens(text, source);
    read.resize(std::min(read.size(), static_cast<std::size_t>(max_len_ - 1)));
    if (tokenization_ == Tokenization::subword) return text::SubwordModel::word_of_pieces(read);
    std::vector<int> words(read.size());
    if (tokenization_ == Tokenization::word) {
      std::iota(words.begin(), words.end(), 0);
    } else {  // characters: a space ends a word and belongs to none
      int w = 0;
      for (std::size_t i = 0; i < read.size(); ++i) words[i] = read[i] == " " ? (++w, -1) : w;
    }
    return words;
  };
  e.source_word_of = word_of(p.source, true);
  e.source_word_of.push_back(-1);  // <eos>
  e.target_word_of = word_of(p.target, false);
  e.target_word_of.push_back(-1);  // the row that predicts <eos>
  return e;
}

std::vector<std::string> TranslationTask::splits() const {
  if (source_ == "numbers") return {"val", "test", "domain", "rare"};
  return {"val", "test"};
}

std::vector<std::int64_t> TranslationTask::split_numbers(const std::string& split) const {
  const std::vector<std::string> known = splits();
  if (source_ != "numbers" || std::find(known.begin(), known.end(), split) == known.end())
    throw std::invalid_argument("translation: no split '" + split + "' of numbers");
  if (split == "val") return val_numbers_;
  if (split == "test") return test_numbers_;
  if (!numbers_) throw std::logic_error("translation: the " + split + " split needs the data loaded");
  if (split == "rare") return numbers_->held_out_numbers();
  std::vector<std::int64_t> every(static_cast<std::size_t>(kMaxNumberWords) + 1);
  std::iota(every.begin(), every.end(), std::int64_t{0});
  return every;
}

TranslationTask::Examples TranslationTask::examples(const std::string& split) const {
  Examples e;
  if (source_ == "numbers")
    e.numbers = split_numbers(split);
  else if (split == "val" || split == "test")
    e.pairs = split == "test" ? test_ : val_;
  else
    throw std::invalid_argument("translation: no split '" + split + "'");
  return e;
}

std::map<std::string, double> TranslationTask::evaluate(const std::string& split) {
  const Examples data = examples(split);
  // rune eval's long work (the domain's million numbers take minutes) shows its progress
  train::ProgressLine progress(split == "domain" || split == "rare", 10);
  const auto start = train::ProgressLine::Clock::now();
  evaluated_.clear();
  wrong_.clear();
  NoGradGuard no_grad;
  double loss_sum = 0, counted = 0, right = 0, exact = 0;
  std::vector<std::vector<text::Tokens>> references;
  std::vector<text::Tokens> hypotheses;
  std::vector<std::string> outputs, targets;  // whole texts, for sacreBLEU and chrF
  // data-parallel validation: this rank's examples [first, last) (all of them on one rank), the
  // others' gathered below
  const bool sharded = shard().ranks > 1;
  const auto [shard_begin, shard_end] = shard().rows(static_cast<std::int64_t>(data.size()));
  const auto first = static_cast<std::size_t>(shard_begin), last = static_cast<std::size_t>(shard_end);
  for (std::size_t at = first; at < last; at += kEvalBatch) {
    const std::size_t end = std::min(last, at + kEvalBatch);
    std::vector<Pair> chunk;
    for (std::size_t i = at; i < end; ++i) chunk.push_back(data.pair(i));
    model_->eval();
    const Batch b = encode(chunk);
    const Tensor logits = model_->forward(b.src, b.tgt_in);
    CrossEntropyOptions o;
    o.ignore_index = Vocabulary::pad;
    o.reduction = Reduction::sum;
    loss_sum += cross_entropy(reshape(logits, {-1, logits.size(2)}), reshape(b.tgt_out, {-1}), o).item();
    const Tensor predicted = argmax(logits, -1).contiguous();
    const std::int64_t* want = b.tgt_out.data<std::int64_t>();
    for (std::int64_t i = 0; i < b.tgt_out.numel(); ++i)
      if (want[i] != Vocabulary::pad) {
        ++counted;
        right += predicted.data<std::int64_t>()[i] == want[i];
      }
    // Greedy decoding outputs an example's reference when, fed the reference as above, the model
    // puts the reference's next token first at every position up to its <eos>: step t of decoding
    // then sees the very prefix position t sees here (the decoder is causal). Such an example is
    // not decoded again; one within kTieMargin of a tie anywhere (the two passes round
    // differently), or under beam search, is.
    const Tensor scores = logits.contiguous();  // (B, T, V)
    const std::int64_t T = scores.size(1), V = scores.size(2);
    std::vector<std::string> decoded(chunk.size()), sources;
    std::vector<std::size_t> undecided;
    const std::int64_t beam = split == "val" ? val_beam_ : beam_;
    for (std::size_t i = 0; i < chunk.size(); ++i) {
      const auto offset = static_cast<std::int64_t>(i) * T;
      if (beam == 1 && greedy_follows(scores.data<float>() + offset * V, want + offset, T, V)) {
        std::vector<std::string> words;
        for (std::int64_t t = 0; want[offset + t] != Vocabulary::eos; ++t)
          words.push_back(tgt_vocab_.token(want[offset + t]));
        decoded[i] = detokenize(words);
      } else {
        undecided.push_back(i);
        sources.push_back(chunk[i].source);
      }
    }
    const std::vector<std::string> translations = decode_texts(sources, nullptr, beam);
    for (std::size_t k = 0; k < undecided.size(); ++k) decoded[undecided[k]] = translations[k];
    for (std::size_t i = 0; i < chunk.size(); ++i) {
      if (decoded[i] == chunk[i].target)
        ++exact;
      else
        wrong_.emplace_back(at + i, decoded[i]);
      hypotheses.push_back(text::split_words(decoded[i]));
      outputs.push_back(decoded[i]);
      targets.push_back(chunk[i].target);
      references.push_back({text::split_words(chunk[i].target)});
    }
    progress.show(train::ProgressLine::status("evaluating the " + split + " split: example",
                                              static_cast<std::int64_t>(end), static_cast<std::int64_t>(data.size()),
                                              start));
  }
  model_->train();
  if (sharded) {  // every rank's sums, and every rank's translations in example order
    const train::Communicator& comm = train::Communicator::world();
    double sums[4] = {loss_sum, counted, right, exact};
    comm.allreduce_sum(sums, 4);
    loss_sum = sums[0];
    counted = sums[1];
    right = sums[2];
    exact = sums[3];
    std::string mine;
    for (const std::string& o : outputs) mine += o + '\0';
    outputs.clear();
    for (const std::string& part : comm.allgather(mine))
      for (std::size_t at = 0, zero; (zero = part.find('\0', at)) != std::string::npos; at = zero + 1)
        outputs.push_back(part.substr(at, zero - at));
    if (outputs.size() != data.size())
      throw std::logic_error("translation: " + std::to_string(outputs.size()) + " translations gathered for " +
                             std::to_string(data.size()) + " examples");
    targets.clear();
    references.clear();
    hypotheses.clear();
    wrong_.clear();
    for (std::size_t i = 0; i < data.size(); ++i) {
      targets.push_back(data.pair(i).target);
      references.push_back({text::split_words(targets.back())});
      hypotheses.push_back(text::split_words(outputs[i]));
      if (outputs[i] != targets.back()) wrong_.emplace_back(i, outputs[i]);
    }
  }
  evaluated_ = split;
  const auto n = static_cast<double>(data.size());
  progress.line("the " + split + " split: " + std::to_string(wrong_.size()) + " of " + std::to_string(data.size()) +
                " translations wrong (" +
                train::duration(std::chrono::duration<double>(train::ProgressLine::Clock::now() - start).count()) +
                ")");
  std::map<std::string, double> metrics{{"loss", loss_sum / counted},
                                        {"token_accuracy", right / counted},
                                        {"exact_match", exact / n},
                                        {"bleu", text::corpus_bleu(references, hypotheses)}};
  if (source_ != "numbers") {  // real text: the scores papers report, 0..100
    metrics["sacrebleu"] = text::corpus_bleu_sacre(outputs, {targets}).score;
    metrics["chrf"] = text::corpus_chrf(outputs, {targets});
  }
  return metrics;
}

void TranslationTask::write_examples(const std::string& path, bool wrong_only) const {
  if (evaluated_.empty()) throw std::logic_error("translation: no split was evaluated");
  const Examples data = examples(evaluated_);
  const bool numbered = source_ == "numbers";
  std::vector<report::CsvField> header{"index"};
  if (numbered) header.insert(header.end(), {"number", "training"});
  header.insert(header.end(), {"source", "reference", "translation", "exact"});
  report::Csv csv(header);
  const auto row = [&](std::size_t i, const std::string* wrong) {
    const Pair p = data.pair(i);
    std::vector<report::CsvField> fields{i};
    if (numbered) fields.insert(fields.end(), {data.numbers[i], numbers_->trains_on(data.numbers[i]) ? 1 : 0});
    fields.insert(fields.end(), {report::CsvField::quoted(p.source), report::CsvField::quoted(p.target),
                                 report::CsvField::quoted(wrong ? *wrong : p.target), wrong ? 0 : 1});
    csv.row(fields);
  };
  auto w = wrong_.begin();
  for (std::size_t i = 0; i < data.size(); ++i) {
    const bool is_wrong = w != wrong_.end() && w->first == i;
    if (is_wrong || !wrong_only) row(i, is_wrong ? &w->second : nullptr);
    if (is_wrong) ++w;
  }
  csv.write(path);
}

std::vector<std::string> TranslationTask::write_reports(const std::string& split, const std::string& dir) {
  if (evaluated_ != split) evaluate(split);
  const Examples data = examples(split);
  // the first few on stderr, so a reader sees the output without opening the file
  const auto show = [&](std::size_t i, const std::string& translation) {
    const Pair p = data.pair(i);
    std::fprintf(stderr, "  %s -> %s (reference: %s)\n", p.source.c_str(), translation.c_str(), p.target.c_str());
  };
  if (source_ != "numbers") {  // real text: hardly a translation is exact, so every one is written
    const std::string path = (std::filesystem::path(dir) / ("translations-" + split + ".csv")).string();
    write_examples(path, false);
    constexpr std::size_t kShown = 3;
    std::fprintf(stderr, "the translations of the %s split are in %s; the first %zu:\n", split.c_str(), path.c_str(),
                 std::min(kShown, data.size()));
    auto w = wrong_.begin();
    for (std::size_t i = 0; i < std::min(kShown, data.size()); ++i) {
      const bool is_wrong = w != wrong_.end() && w->first == i;
      show(i, is_wrong ? w->second : data.pair(i).target);
      if (is_wrong) ++w;
    }
    return {path};
  }
  const std::string path = (std::filesystem::path(dir) / ("errors-" + split + ".csv")).string();
  write_examples(path, true);
  constexpr std::size_t kShown = 10;
  if (!wrong_.empty())
    std::fprintf(stderr, "%zu of %zu translations of the %s split are wrong (%s); the first %zu:\n", wrong_.size(),
                 data.size(), split.c_str(), path.c_str(), std::min(kShown, wrong_.size()));
  for (std::size_t k = 0; k < std::min(kShown, wrong_.size()); ++k) show(wrong_[k].first, wrong_[k].second);
  return {path};
}

void TranslationTask::write_predictions(const std::string& path) const { write_examples(path, false); }

std::int64_t TranslationTask::prepare_analysis(const std::string& split, std::int64_t batch_size, std::int64_t limit) {
  const std::vector<Pair>& data = split == "test" ? test_ : val_;
  const std::size_t n = limit > 0 ? std::min(data.size(), static_cast<std::size_t>(limit)) : data.size();
  analysis_.clear();
  for (std::size_t at = 0; at < n; at += static_cast<std::size_t>(batch_size))
    analysis_.emplace_back(
        data.begin() + static_cast<std::ptrdiff_t>(at),
        data.begin() + static_cast<std::ptrdiff_t>(std::min(n, at + static_cast<std::size_t>(batch_size))));
  return static_cast<std::int64_t>(n);
}

analysis::AnalysisBatch TranslationTask::analysis_batch(std::int64_t index) {
  const Batch b = encode(analysis_.at(static_cast<std::size_t>(index)));
  return analysis::seq2seq_analysis_batch(*model_, b.src, b.tgt_in, b.tgt_out);
}

void TranslationTask::describe(train::Checkpoint& c) const {
  c.meta_strings["source_vocabulary"] = src_vocab_.tokens();
  c.meta_strings["target_vocabulary"] = tgt_vocab_.tokens();
  train::describe_seq2seq(*model_, "tokens <eos>", c);  // encode(): the source ends in <eos>, no <bos>
  auto& a = c.architecture;
  a["unk_id"] = Vocabulary::unk;
  a["source_vocabulary"] = std::string("source_vocabulary");  // keys of /meta
  a["target_vocabulary"] = std::string("target_vocabulary");
  if (tokenization_ == Tokenization::subword) {
    c.meta_bytes["source_subwords"] = src_subwords_->bytes();
    c.meta_bytes["target_subwords"] = tgt_subwords_->bytes();
    a["tokenization"] = std::string("sentencepiece");
    a["tokenization_rule"] = std::string(
        "the SentencePiece models /meta/source_subwords and /meta/target_subwords (serialized ModelProto); token id = "
        "piece id; output pieces decoded by the target model");
  } else {
    const bool words = tokenization_ == Tokenization::word;
    a["tokenization"] = std::string(words ? "word" : "char");
    a["tokenization_rule"] = std::string(
        words ? "split at runs of ASCII whitespace (space, \\t, \\n, \\v, \\f, \\r); output tokens joined by one space"
              : "UTF-8 code points (a space is a token); output tokens joined with nothing");
  }
  a["unknown_tokens"] = std::string("unk_id");
  // encode() keeps max_len - 1 tokens of each side before <eos>; translate() decodes max_len steps
  a["max_source_tokens"] = max_len_ - 1;
  a["max_target_tokens"] = max_len_ - 1;
  a["max_decode_steps"] = max_len_;
  a["decoding"] = std::string(beam_ > 1 ? "beam" : "greedy");
  a["decode_beam"] = beam_;
  a["decode_length_penalty"] = length_penalty_;
}

std::vector<std::string> TranslationTask::export_onnx(const std::string& path) {
  const char* name = tokenization_ == Tokenization::subword ? "sentencepiece"
                     : tokenization_ == Tokenization::word  ? "word"
                                                            : "char";
  const onnx_export::Metadata metadata{
      {"rune.task", "translation"},
      {"source_vocabulary", nlohmann::json(src_vocab_.tokens()).dump()},  // JSON arrays, id = index
      {"target_vocabulary", nlohmann::json(tgt_vocab_.tokens()).dump()},
      {"pad_id", std::to_string(Vocabulary::pad)},
      {"bos_id", std::to_string(Vocabulary::bos)},
      {"eos_id", std::to_string(Vocabulary::eos)},
      {"unk_id", std::to_string(Vocabulary::unk)},
      {"tokenization", name},
      {"tokenization_rule",
       tokenization_ == Tokenization::word ? "split at runs of ASCII whitespace; output tokens joined by one space"
       : tokenization_ == Tokenization::character
           ? "UTF-8 code points (a space is a token); output tokens joined with nothing"
           : "the SentencePiece models the checkpoint holds (/meta/source_subwords, /meta/target_subwords)"},
      {"source_format", "tokens <eos>: at most max_source_tokens tokens, then eos_id; rows padded with pad_id"},
      {"max_source_tokens", std::to_string(max_len_ - 1)},
      {"max_target_tokens", std::to_string(max_len_ - 1)},  // what --scores reads of a target, before <eos>
      {"max_decode_steps", std::to_string(max_len_)},
      {"decoding",
       "greedy: token = bos_id at position 0, then each step's argmax of logits, until eos_id or "
       "max_decode_steps tokens"}};
  return onnx_export::write_seq2seq(*model_, metadata, path);
}

std::string TranslationTask::onnx_layout() const {
  const std::string C = std::to_string(model_->options.transformer.d_model);
  const std::string L = std::to_string(model_->transformer->decoder->layers->size());
  const std::string V = std::to_string(model_->options.tgt_vocab);
  return "graph encoder: src int64 (batch, source_length) -> memory float (batch, source_length, " + C +
         "), src_padding_mask bool (batch, source_length)\n"
         "graph decoder_step: token int64 (batch, 1), position int64 (1), memory, src_padding_mask, past_key_<l> and "
         "past_value_<l> (l < " +
         L + ") -> logits and log_probs float (batch, " + V +
         "), present_key_<l> and present_value_<l>\n"
         "vocabularies, special ids and tokenization in the metadata; docs/onnx.md decodes greedily with them\n";
}

namespace {
const bool registered =
    train::register_task<TranslationTask, train::Translator, train::EvalReports, analysis::HeadAnalysisSource,
                         analysis::TextAttentionSource, analysis::AlignmentSource, train::OnnxExporter>(
        "translation", "an encoder-decoder Transformer translating number words, a TSV parallel corpus or the Bible");
}  // namespace

}  // namespace rune::examples
