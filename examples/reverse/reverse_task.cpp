#include "examples/reverse/reverse_task.hpp"

#include <algorithm>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "analysis/attention_recorder.hpp"
#include "analysis/seq2seq_batch.hpp"
#include "autograd/ops.hpp"
#include "autograd/tape.hpp"
#include "train/model_config.hpp"

namespace rune::examples {

namespace {
constexpr std::int64_t kPad = 0, kBos = 1, kEos = 2, kFirstDigit = 3;
}

ReverseTask::ReverseTask(train::Config& c, const train::TaskContext& context) : seed_(context.seed) {
  digits_ = c.integer("data.digits", 10, {2, 1000}, "distinct tokens the sequences are made of");
  min_len_ = c.integer("data.min_len", 2, {1, 512}, "the shortest sequence");
  max_len_ = c.integer("data.max_len", 8, {min_len_, 512}, "the longest sequence (at least data.min_len)");
  batch_size_ = c.integer("data.batch_size", 32, {1}, "sequences per training batch");
  batches_per_epoch_ =
      c.integer("data.batches_per_epoch", 50, {1}, "training batches per epoch, each drawn from the seed");
  eval_size_ = c.integer("data.eval_size", 256, {1}, "sequences in the validation set, and as many in the test set");
  label_smoothing_ =
      c.number("train.label_smoothing", 0.0, {0.0, 1.0, true}, "label smoothing of the cross-entropy loss");
  nn::Seq2SeqOptions o;
  o.src_vocab = o.tgt_vocab = kFirstDigit + digits_;
  o.max_len = max_len_ + 2;
  o.transformer = train::read_transformer_options(c, 64, 4, context.dropout);
  train::read_embedding_options(c, o);
  if (context.describe_only) return;  // rune config: the keys are declared
  train::check_model_memory(c, o, batch_size_, max_len_, max_len_ + 1, {{"data.digits", digits_}});
  // evaluation runs each split as one batch, without backward: one layer's activations at a time
  const auto T = static_cast<double>(max_len_ + 1), N = static_cast<double>(eval_size_);
  const double eval_floats = train::activation_floats(N, T, static_cast<double>(o.transformer.d_model),
                                                      static_cast<double>(o.transformer.nhead), 1) +
                             2 * N * T * static_cast<double>(o.tgt_vocab);
  train::check_memory(
      c, "an evaluation batch's activations (about " + train::count_text(eval_floats) + " floats)", 4 * eval_floats,
      {{"data.eval_size", eval_size_}, {"data.max_len", max_len_, 2}, {"model.d_model", o.transformer.d_model}});
  model_ = std::make_shared<nn::Seq2SeqTransformer>(o, *context.init);
}

ReverseTask::Batch ReverseTask::make_batch(Generator& g, std::int64_t size) const {
  const std::int64_t S = max_len_, T = max_len_ + 1;
  std::vector<std::int64_t> src(static_cast<std::size_t>(size * S), kPad),
      tin(static_cast<std::size_t>(size * T), kPad), tout(static_cast<std::size_t>(size * T), kPad);
  for (std::int64_t b = 0; b < size; ++b) {
    const std::int64_t n =
        min_len_ + static_cast<std::int64_t>(g.below(static_cast<std::uint64_t>(max_len_ - min_len_ + 1)));
    for (std::int64_t i = 0; i < n; ++i) src[b * S + i] = kFirstDigit + static_cast<std::int64_t>(g.below(digits_));
    tin[b * T] = kBos;
    for (std::int64_t i = 0; i < n; ++i) {
      const std::int64_t d = src[b * S + n - 1 - i];  // the reversed sequence
      tout[b * T + i] = d;
      tin[b * T + i + 1] = d;
    }
    tout[b * T + n] = kEos;
  }
  return {from_vector(src, {size, S}), from_vector(tin, {size, T}), from_vector(tout, {size, T})};
}

train::BatchLoss ReverseTask::train_batch(std::int64_t epoch, std::int64_t index) {
  // the batch depends on (seed, epoch, index) only
  Generator g(seed_ * 1000003ULL + static_cast<std::uint64_t>(epoch) * 7919ULL + static_cast<std::uint64_t>(index));
  const Batch whole = make_batch(g, batch_size_);
  const auto [begin, end] = shard().rows(batch_size_);
  if (begin == end) return {};  // more ranks than the batch has rows
  const Batch b{whole.src.slice(0, begin, end), whole.tgt_in.slice(0, begin, end), whole.tgt_out.slice(0, begin, end)};
  const Tensor logits = model_->forward(b.src, b.tgt_in);  // (B, T, V)
  const std::int64_t V = logits.size(2);
  CrossEntropyOptions o;
  o.ignore_index = kPad;
  o.label_smoothing = label_smoothing_;
  const Tensor loss = cross_entropy(reshape(logits, {-1, V}), reshape(b.tgt_out, {-1}), o);
  const double tokens = sum(to_dtype(ne(b.tgt_out, full({}, kPad, DType::int64)), DType::float64)).item();
  return {loss, tokens};
}

ReverseTask::Batch ReverseTask::split_batch(const std::string& split) const {
  Generator g(seed_ * 1000003ULL + (split == "test" ? 2 : 1) * 0x9E3779B97F4A7C15ULL);
  return make_batch(g, eval_size_);
}

std::int64_t ReverseTask::prepare_analysis(const std::string& split, std::int64_t batch_size, std::int64_t limit) {
  analysis_ = split_batch(split);
  analysis_size_ = limit > 0 ? std::min(limit, eval_size_) : eval_size_;
  analysis_batch_size_ = batch_size;
  return analysis_size_;
}

analysis::AnalysisBatch ReverseTask::analysis_batch(std::int64_t index) {
  const std::int64_t start = index * analysis_batch_size_, end = std::min(analysis_size_, start + analysis_batch_size_);
  if (index < 0 || start >= end)
    throw std::out_of_range("ReverseTask::analysis_batch: no batch " + std::to_string(index));
  const auto rows = [&](const Tensor& t) { return slice(t, 0, start, end).contiguous(); };
  return analysis::seq2seq_analysis_batch(*model_, rows(analysis_.src), rows(analysis_.tgt_in),
                                          rows(analysis_.tgt_out));
}

std::int64_t ReverseTask::prepare_alignment(const std::string& split, std::int64_t limit) {
  if (split != "val" && split != "test")
    throw std::invalid_argument("reverse: no split '" + split + "' to align (val or test)");
  alignment_ = split_batch(split);
  alignment_size_ = limit > 0 ? std::min(limit, eval_size_) : eval_size_;
  return alignment_size_;
}

analysis::AlignmentExample ReverseTask::alignment_example(std::int64_t index) {
  if (index < 0 || index >= alignment_size_)
    throw std::out_of_range("ReverseTask::alignment_example: no example " + std::to_string(index) + " of " +
                            std::to_string(alignment_size_));
  const std::int64_t S = alignment_.src.size(1);
  const std::int64_t* src = alignment_.src.data<std::int64_t>() + index * S;
  std::int64_t n = 0;
  while (n < S && src[n] != kPad) ++n;
  const std::vector<std::string> vocab = vocabulary();
  analysis::AlignmentExample e;
  e.name = "pair " + std::to_string(index);
  for (std::int64_t i = 0; i < n; ++i) {
    e.source_words.push_back(vocab[static_cast<std::size_t>(src[i])]);
    e.target_words.push_back(vocab[static_cast<std::size_t>(src[n - 1 - i])]);
    e.gold.emplace_back(static_cast<int>(n - 1 - i), static_cast<int>(i));
    e.source_word_of.push_back(static_cast<int>(i));  // a digit is a token and a word; no <eos>
    e.target_word_of.push_back(static_cast<int>(i));  // row i predicts target digit i
  }
  e.target_word_of.push_back(-1);  // the last row predicts <eos>
  e.attention.source = e.source_words;
  e.attention.target = {"<bos>"};
  e.attention.target.insert(e.attention.target.end(), e.target_words.begin(), e.target_words.end());
  // the example alone, unpadded: (1, n) and (1, n + 1)
  const Tensor s_ids = slice(slice(alignment_.src, 0, index, index + 1), 1, 0, n).contiguous();
  const Tensor t_in = slice(slice(alignment_.tgt_in, 0, index, index + 1), 1, 0, n + 1).contiguous();
  std::vector<std::pair<std::string, nn::MultiheadAttention*>> cross;
  const auto& layers = *model_->transformer->decoder->layers;
  for (std::size_t l = 0; l < layers.size(); ++l)
    cross.emplace_back("transformer.decoder.layers." + std::to_string(l) + ".multihead_attn",
                       layers[l].multihead_attn.get());
  NoGradGuard no_grad;
  model_->eval();
  {
    const analysis::AttentionRecorder recorder(cross);
    model_->forward(s_ids, t_in);
    for (std::size_t l = 0; l < cross.size(); ++l) {
      const Tensor& w = recorder.weights(l);  // (1, H, n + 1, n)
      e.attention.layers.push_back(
          {"cross", static_cast<std::int64_t>(l), reshape(w, {w.size(1), w.size(2), w.size(3)})});
    }
  }
  model_->train();
  return e;
}

std::map<std::string, double> ReverseTask::evaluate(const std::string& split) {
  NoGradGuard no_grad;
  model_->eval();
  const Batch b = split_batch(split);
  const Tensor logits = model_->forward(b.src, b.tgt_in);
  const std::int64_t V = logits.size(2), T = b.tgt_out.size(1), N = b.src.size(0);
  CrossEntropyOptions o;
  o.ignore_index = kPad;
  const double loss = cross_entropy(reshape(logits, {-1, V}), reshape(b.tgt_out, {-1}), o).item();
  const Tensor predicted = argmax(logits, -1).contiguous();      // teacher-forced
  const Tensor decoded = model_->greedy(b.src, T).contiguous();  // free-running, with the KV cache
  const std::int64_t* want = b.tgt_out.data<std::int64_t>();
  std::int64_t tokens = 0, right_tokens = 0, exact = 0;
  for (std::int64_t i = 0; i < N; ++i) {
    bool same = true;
    for (std::int64_t t = 0; t < T; ++t) {
      const std::int64_t w = want[i * T + t];
      if (w != kPad) {
        ++tokens;
        right_tokens += predicted.data<std::int64_t>()[i * T + t] == w;
      }
      same = same && decoded.data<std::int64_t>()[i * T + t] == w;
    }
    exact += same;
  }
  model_->train();
  return {{"loss", loss},
          {"token_accuracy", static_cast<double>(right_tokens) / static_cast<double>(tokens)},
          {"exact_match", static_cast<double>(exact) / static_cast<double>(N)}};
}

std::vector<std::string> ReverseTask::vocabulary() const {
  std::vector<std::string> vocab{"<pad>", "<bos>", "<eos>"};
  for (std::int64_t d = 0; d < digits_; ++d) vocab.push_back(std::to_string(d));
  return vocab;
}

std::vector<std::int64_t> ReverseTask::token_ids(const std::string& text) const {
  std::vector<std::int64_t> ids;
  std::istringstream in(text);
  for (std::string token; in >> token && static_cast<std::int64_t>(ids.size()) < max_len_;) {
    std::int64_t d = -1;
    for (std::int64_t k = 0; k < digits_ && d < 0; ++k)
      if (token == std::to_string(k)) d = k;
    if (d < 0)
      throw std::invalid_argument("reverse: '" + token + "' in '" + text + "' is not a digit 0.." +
                                  std::to_string(digits_ - 1));
    ids.push_back(kFirstDigit + d);
  }
  return ids;
}

void ReverseTask::note_length(std::vector<std::string>* notes, std::size_t number, const std::string& text) const {
  if (!notes) return;
  std::istringstream in(text);
  std::int64_t n = 0;
  for (std::string token; in >> token;) ++n;
  if (n > max_len_)
    notes->push_back("sentence " + std::to_string(number) + " has " + std::to_string(n) + " digits; the model reads " +
                     std::to_string(max_len_) + " of them (data.max_len): the rest is ignored");
}

ReverseTask::Batch ReverseTask::encode(const std::vector<std::pair<std::string, std::string>>& pairs) const {
  // source: digits (no <eos>); decoder input: <bos> + target; target: target + <eos>; pad = 0
  std::vector<std::vector<std::int64_t>> src, tgt;
  std::size_t S = 1, T = 1;
  for (const auto& [source, target] : pairs) {
    src.push_back(token_ids(source));
    tgt.push_back(token_ids(target));
    S = std::max(S, src.back().size());
    T = std::max(T, tgt.back().size() + 1);
  }
  const auto B = static_cast<std::int64_t>(pairs.size());
  std::vector<std::int64_t> s_ids(static_cast<std::size_t>(B) * S, kPad), in_ids(static_cast<std::size_t>(B) * T, kPad),
      out_ids(static_cast<std::size_t>(B) * T, kPad);
  for (std::size_t b = 0; b < pairs.size(); ++b) {
    std::copy(src[b].begin(), src[b].end(), s_ids.begin() + static_cast<std::ptrdiff_t>(b * S));
    in_ids[b * T] = kBos;
    for (std::size_t i = 0; i < tgt[b].size(); ++i) {
      in_ids[b * T + i + 1] = tgt[b][i];
      out_ids[b * T + i] = tgt[b][i];
    }
    out_ids[b * T + tgt[b].size()] = kEos;
  }
  return {from_vector(s_ids, {B, static_cast<std::int64_t>(S)}), from_vector(in_ids, {B, static_cast<std::int64_t>(T)}),
          from_vector(out_ids, {B, static_cast<std::int64_t>(T)})};
}

std::vector<std::string> ReverseTask::translate(const std::vector<std::string>& sources,
                                                std::vector<std::string>* notes) {
  NoGradGuard no_grad;
  model_->eval();
  std::vector<std::pair<std::string, std::string>> pairs;
  for (const auto& s : sources) pairs.emplace_back(s, "");
  const Tensor ids = model_->greedy(encode(pairs).src, max_len_ + 1).contiguous();  // as evaluate() decodes
  const std::vector<std::string> vocab = vocabulary();
  std::vector<std::string> out;
  for (std::int64_t i = 0; i < ids.size(0); ++i) {
    std::string text;
    bool ended = false;  // by <eos>, rather than by running out of steps
    for (std::int64_t t = 0; t < ids.size(1); ++t) {
      const std::int64_t id = ids.data<std::int64_t>()[i * ids.size(1) + t];
      if ((ended = id == kEos || id == kPad)) break;
      text += (text.empty() ? "" : " ") + vocab[static_cast<std::size_t>(id)];
    }
    out.push_back(text);
    const auto number = static_cast<std::size_t>(i) + 1;
    note_length(notes, number, sources[static_cast<std::size_t>(i)]);
    if (notes && !ended)
      notes->push_back("sentence " + std::to_string(number) + ": the reversal reached " + std::to_string(max_len_ + 1) +
                       " tokens without <eos>: it is cut there");
  }
  model_->train();
  return out;
}

std::vector<double> ReverseTask::log_probability(const std::vector<std::pair<std::string, std::string>>& pairs,
                                                 std::vector<std::string>* notes) {
  model_->eval();
  const Batch b = encode(pairs);
  const std::vector<double> out = model_->log_probability(b.src, b.tgt_in, b.tgt_out);
  for (std::size_t i = 0; i < pairs.size(); ++i) {
    note_length(notes, i + 1, pairs[i].first);
    note_length(notes, i + 1, pairs[i].second);
  }
  model_->train();
  return out;
}

void ReverseTask::describe(train::Checkpoint& c) const {
  c.meta_strings["vocabulary"] = vocabulary();
  train::describe_seq2seq(*model_, "tokens", c);  // make_batch(): the digits alone, no <eos>
  auto& a = c.architecture;
  a["source_vocabulary"] = std::string("vocabulary");  // a key of /meta, for both sides
  a["target_vocabulary"] = std::string("vocabulary");
  a["tokenization"] = std::string("word");
  a["tokenization_rule"] =
      std::string("digits separated by runs of ASCII whitespace; output tokens joined by one space");
  a["unknown_tokens"] = std::string("refused");
  a["max_source_tokens"] = max_len_;
  a["max_target_tokens"] = max_len_;
  a["max_decode_steps"] = max_len_ + 1;
  a["decoding"] = std::string("greedy");
}

namespace {
const bool registered =
    train::register_task<ReverseTask, train::Translator, analysis::HeadAnalysisSource, analysis::AlignmentSource>(
        "reverse", "reverse a sequence of digits: the smallest sequence-to-sequence task, a smoke test");
}  // namespace

}  // namespace rune::examples
