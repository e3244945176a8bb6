#include "examples/lm/lm_task.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <stdexcept>

#include "autograd/ops.hpp"
#include "autograd/tape.hpp"
#include "text/utf8.hpp"
#include "train/memory.hpp"

namespace rune::examples {

namespace {
using text::Vocabulary;

// Ends with an incomplete UTF-8 character, or SentencePiece's stand-in for one: wait for more.
bool unfinished(const std::string& s) {
  if (s.size() >= 3 && s.compare(s.size() - 3, 3, "\xef\xbf\xbd") == 0) return true;
  std::size_t i = s.size(), back = 0;
  while (i > 0 && back < 4 && text::is_continuation_byte(static_cast<unsigned char>(s[i - 1]))) --i, ++back;
  if (i == 0) return back > 0;
  return back + 1 < text::utf8_sequence_length(static_cast<unsigned char>(s[i - 1]));
}
}  // namespace

LmTask::LmTask(train::Config& c, const train::TaskContext& context) : seed_(context.seed) {
  source_ = c.string("data.source", "bible", {"bible", "text"},
                     "the text: bible (the verses of a SWORD module, validation Joshua and Romans, test Acts: "
                     "docs/bible.md) or text (three plain text files, a document per line)");
  std::string module, sword_path, train_file, val_file, test_file;
  if (source_ == "bible") {
    module = c.string("data.module", "engWEB2015eb", "the SWORD module (engWEB2015eb: Debian's sword-text-web)");
    sword_path =
        c.string("data.sword_path", "", "the folder of the SWORD modules (empty: $SWORD_PATH or /usr/share/sword)");
    c.unused_here({"data.train_file", "data.val_file", "data.test_file"}, "data.source", {"text"});
  } else {
    train_file = c.string("data.train_file", "", "the training text, a document per line");
    val_file = c.string("data.val_file", "", "the validation text, a document per line");
    test_file = c.string("data.test_file", "", "the test text, a document per line");
    c.unused_here({"data.module", "data.sword_path"}, "data.source", {"bible"});
    for (const auto& [key, value] :
         {std::pair{"data.train_file", train_file}, {"data.val_file", val_file}, {"data.test_file", test_file}})
      if (value.empty() && !context.describe_only && !context.checkpoint)
        c.fail(key, "data.source = \"text\" needs it");
  }
  const bool subwords = c.string("data.tokenization", "char", {"char", "sentencepiece"},
                                 "tokens: characters (UTF-8 code points) or sentencepiece subwords trained on the "
                                 "training text") == "sentencepiece";
  text::SubwordOptions subword_options;
  if (subwords) {
    subword_options.vocab_size =
        c.integer("data.vocab_size", 4000, {300}, "SentencePiece pieces, the 4 specials and 256 byte pieces included");
    subword_options.model_type =
        c.string("data.subword_model", "unigram", {"unigram", "bpe"}, "the SentencePiece model: unigram or bpe");
  } else {
    c.unused_here({"data.vocab_size", "data.subword_model"}, "data.tokenization", {"sentencepiece"});
  }
  context_ = c.integer("data.context", 128, {2, 1 << 20}, "tokens per training window: the model's context");
  batch_size_ = c.integer("data.batch_size", 32, {1}, "windows per training batch (and per evaluation batch)");
  batches_per_epoch_ = c.integer("data.batches_per_epoch", {0, "0: the training tokens / (batch_size * context)"}, {0},
                                 "training batches per epoch, each of windows at offsets drawn from the seed");
  eval_tokens_ =
      c.integer("data.eval_tokens", 0, {0}, "tokens of each evaluation split scored, from its start (0: all of them)");

  nn::CausalLMOptions o;
  nn::TransformerLayerOptions& l = o.layer;
  l.d_model = c.integer("model.d_model", 256, {1}, "width of the model: the embeddings and every block");
  l.nhead = c.integer("model.nhead", 4, {1}, "attention heads per block; must divide model.d_model");
  if (l.d_model % l.nhead != 0)
    c.fail("model.nhead", std::to_string(l.nhead) + " does not divide model.d_model " + std::to_string(l.d_model));
  l.num_kv_heads = c.integer("model.num_kv_heads", {0, "0: model.nhead"}, {0},
                             "key/value heads: model.nhead (multi-head), a divisor of it (grouped-query) or 1 "
                             "(multi-query)");
  if (l.num_kv_heads != 0 && l.nhead % l.num_kv_heads != 0)
    c.fail("model.num_kv_heads",
           std::to_string(l.num_kv_heads) + " does not divide model.nhead " + std::to_string(l.nhead));
  o.num_layers = c.integer("model.num_layers", 4, {1}, "Transformer blocks");
  l.dim_feedforward =
      c.integer("model.dim_feedforward", {4 * l.d_model, "4 * model.d_model"}, {1}, "hidden width of each block's MLP");
  l.dropout = c.number("model.dropout", 0.1, {0.0, 1.0, true},
                       "dropout on the embedding, the attention weights, the residual branches and in the MLP");
  o.positions = nn::position_kind_from_name(
      c.string("model.positions", "learned", {"learned", "sinusoidal", "rotary"},
               "positions: a learned table (GPT-2), fixed sinusoids added to the tokens, or rotary (RoPE) in "
               "every attention"));
  if (o.positions == nn::PositionKind::rotary) {
    l.rope_base = c.number("model.rope_base", 10000.0, {1.0},
                           "RoPE's base: the angle of feature pair i at "
                           "position t is t / base^(2i / rope_dim)");
    l.rope_dim = c.integer("model.rope_dim", {0, "0: the head dimension"}, {0},
                           "features of each head that rotate (even, at most the head dimension)");
    const std::int64_t head_dim = l.d_model / l.nhead;
    if (l.rope_dim % 2 != 0 || l.rope_dim > head_dim)
      c.fail("model.rope_dim",
             std::to_string(l.rope_dim) + " must be even and at most the head dimension " + std::to_string(head_dim));
  } else {
    c.unused_here({"model.rope_base", "model.rope_dim"}, "model.positions", {"rotary"});
  }
  o.tie_output = c.boolean("model.tie_output", true, "the output projection is the token embedding's weights");
  l.attention_kernel = nn::attention_kernel_from_name(
      c.string("model.attention_kernel", "auto", {"auto", "plain", "tiled"},
               "attention's kernel: plain keeps the (T, T) weights for backward, tiled (FlashAttention) one number per "
               "query and computes the weights twice; auto takes tiled from 512 keys on when dropout is off"));
  if (l.attention_kernel == nn::AttentionKernel::tiled && l.dropout > 0.0 && !context.describe_only)
    c.fail("model.attention_kernel",
           "tiled never forms the attention weights, so it cannot drop any: it needs "
           "model.dropout = 0 (auto falls back to plain where dropout is on)");
  o.max_len = context_;
  l.dropout_generator = context.dropout;
  if (context.describe_only) return;

  // the tokenizer: from the checkpoint, or built from the training text
  std::vector<Document> train_docs, val_docs, test_docs;
  if (context.load_data) {
    if (source_ == "bible") {
      LmSplits s = bible_documents(module, sword_path);
      train_docs = std::move(s.train), val_docs = std::move(s.val), test_docs = std::move(s.test);
    } else {
      train_docs = read_documents(train_file), val_docs = read_documents(val_file);
      test_docs = read_documents(test_file);
    }
  }
  if (context.checkpoint) {
    const train::Checkpoint& ck = *context.checkpoint;
    if (subwords) {
      if (!ck.meta_bytes.count("subwords"))
        throw std::runtime_error(
            "the checkpoint holds no /meta/subwords (the SentencePiece model of "
            "data.tokenization = \"sentencepiece\")");
      tokenizer_ = std::make_unique<LmTokenizer>(
          LmTokenizer::subwords(text::SubwordModel::from_bytes(ck.meta_bytes.at("subwords"), "/meta/subwords")));
    } else {
      if (!ck.meta_strings.count("vocabulary")) throw std::runtime_error("the checkpoint holds no /meta/vocabulary");
      try {
        tokenizer_ = std::make_unique<LmTokenizer>(LmTokenizer::from_vocabulary(ck.meta_strings.at("vocabulary")));
      } catch (const std::exception& e) {
        throw std::runtime_error("the checkpoint's vocabulary is refused: " + std::string(e.what()));
      }
    }
  } else if (subwords) {
    std::vector<std::string> texts;
    for (const Document& d : train_docs) texts.push_back(d.text);
    try {
      tokenizer_ =
          std::make_unique<LmTokenizer>(LmTokenizer::subwords(text::SubwordModel::train(texts, subword_options)));
    } catch (const std::invalid_argument& e) {
      c.fail("data.vocab_size", e.what());
    }
  } else {
    tokenizer_ = std::make_unique<LmTokenizer>(LmTokenizer::characters(train_docs));
  }
  o.vocab = tokenizer_->size();
  if (context.load_data) {
    train_ = make_stream(train_docs, *tokenizer_);
    val_ = make_stream(val_docs, *tokenizer_);
    test_ = make_stream(test_docs, *tokenizer_);
    if (static_cast<std::int64_t>(train_.ids.size()) < context_ + 1)
      c.fail("data.context",
             std::to_string(context_) + " tokens: the training text has only " + std::to_string(train_.ids.size()));
    for (const auto& [name, s] : {std::pair{"validation", &val_}, {"test", &test_}})
      if (s->unknown > 0)
        std::fprintf(stderr, "the %s text has %lld characters the training text lacks: they read as <unk>\n", name,
                     static_cast<long long>(s->unknown));
    if (batches_per_epoch_ == 0)
      batches_per_epoch_ =
          std::max<std::int64_t>(1, static_cast<std::int64_t>(train_.ids.size()) / (batch_size_ * context_));
  }
  if (batches_per_epoch_ == 0) batches_per_epoch_ = 1;  // no data: a model to run, never to train

  const double params = nn::parameter_count(o);
  train::check_memory(c, "the model's " + train::count_text(params) + " parameters", 4 * params,
                      {{"model.d_model", l.d_model, 2}, {"model.num_layers", o.num_layers}});
  const auto B = static_cast<double>(batch_size_), T = static_cast<double>(context_);
  // the (T, T) weights are kept unless the tiled kernel runs (with dropout, the weights are needed)
  const bool tiled =
      l.dropout == 0.0 && (l.attention_kernel == nn::AttentionKernel::tiled ||
                           (l.attention_kernel == nn::AttentionKernel::automatic && context_ >= nn::kTiledFromKeys));
  const double floats = train::activation_floats(B, T, static_cast<double>(l.d_model), static_cast<double>(l.nhead),
                                                 static_cast<double>(o.num_layers), !tiled) +
                        2 * B * T * static_cast<double>(o.vocab);
  train::check_memory(c,
                      "a training batch's activations (about " + train::count_text(floats) + " floats" +
                          (tiled ? ")"
                                 : ", the (T, T) attention weights of every head and block included: the tiled "
                                   "kernel, model.attention_kernel = \"tiled\" with model.dropout = 0, keeps none)"),
                      4 * floats,
                      {{"data.batch_size", batch_size_},
                       {"data.context", context_, tiled ? 1.0 : 2.0},
                       {"model.d_model", l.d_model},
                       {"model.num_layers", o.num_layers}});
  model_ = std::make_shared<nn::CausalLM>(o, *context.init);
}

const TokenStream& LmTask::stream(const std::string& split) const {
  if (split == "train") return train_;
  if (split == "val") return val_;
  if (split == "test") return test_;
  throw std::invalid_argument("lm: no split '" + split + "' (train, val or test)");
}

std::vector<std::int64_t> LmTask::window_offsets(std::int64_t epoch, std::int64_t index) const {
  Generator g(seed_ * 1000003ULL + static_cast<std::uint64_t>(epoch) * 7919ULL + static_cast<std::uint64_t>(index));
  const std::int64_t starts = static_cast<std::int64_t>(train_.ids.size()) - context_;
  std::vector<std::int64_t> offsets(static_cast<std::size_t>(batch_size_));
  for (auto& o : offsets) o = static_cast<std::int64_t>(g.below(static_cast<std::uint64_t>(starts)));
  return offsets;
}

train::BatchLoss LmTask::train_batch(std::int64_t epoch, std::int64_t index) {
  const std::vector<std::int64_t> offsets = window_offsets(epoch, index);
  const std::int64_t T = context_;
  const auto [begin, end] = shard().rows(batch_size_);
  if (begin == end) return {};  // more ranks than the batch has rows
  const std::int64_t B = end - begin;
  std::vector<std::int64_t> in(static_cast<std::size_t>(B * T)), out(static_cast<std::size_t>(B * T));
  for (std::int64_t b = 0; b < B; ++b) {
    const std::int64_t* w = train_.ids.data() + offsets[static_cast<std::size_t>(begin + b)];
    std::copy(w, w + T, in.begin() + b * T);
    std::copy(w + 1, w + T + 1, out.begin() + b * T);
  }
  const Tensor logits = model_->forward(from_vector(in, {B, T}));
  const Tensor loss = cross_entropy(reshape(logits, {B * T, -1}), from_vector(out, {B * T}));
  return {loss, static_cast<double>(B * T)};
}

std::map<std::string, double> LmTask::evaluate(const std::string& split) {
  const TokenStream& s = stream(split);
  // every token after the first predicted once, from windows of up to `context` tokens
  std::int64_t n = static_cast<std::int64_t>(s.ids.size()) - 1;
  if (eval_tokens_ > 0) n = std::min(n, eval_tokens_);
  if (n < 1) throw std::runtime_error("lm: the " + split + " split has no token to predict");
  NoGradGuard no_grad;
  model_->eval();
  const std::int64_t T = context_, windows = (n + T - 1) / T;
  double nats = 0, chars = 0;
  CrossEntropyOptions ce;
  ce.reduction = Reduction::sum;
  ce.ignore_index = -1;
  for (std::int64_t first = 0; first < windows; first += batch_size_) {
    const std::int64_t B = std::min(batch_size_, windows - first);
    std::vector<std::int64_t> in(static_cast<std::size_t>(B * T), Vocabulary::pad),
        out(static_cast<std::size_t>(B * T), -1);
    for (std::int64_t b = 0; b < B; ++b) {
      const std::int64_t start = (first + b) * T, len = std::min(T, n - start);
      for (std::int64_t t = 0; t < len; ++t) {
        in[static_cast<std::size_t>(b * T + t)] = s.ids[static_cast<std::size_t>(start + t)];
        out[static_cast<std::size_t>(b * T + t)] = s.ids[static_cast<std::size_t>(start + t + 1)];
        chars += s.chars[static_cast<std::size_t>(start + t + 1)];
      }
    }
    const Tensor logits = model_->forward(from_vector(in, {B, T}));
    nats += cross_entropy(reshape(logits, {B * T, -1}), from_vector(out, {B * T}), ce).item();
  }
  model_->train();
  const double loss = nats / static_cast<double>(n);
  return {{"loss", loss},
          {"perplexity", std::exp(loss)},
          {"bits_per_char", nats / (chars * std::log(2.0))},
          {"tokens", static_cast<double>(n)}};
}

std::vector<std::string> LmTask::no_decay_patterns() const {
  return {"*.bias", "*_bias", "*norm*", "embed.weight", "positions.weight"};
}

train::GenerationResult LmTask::generate(const std::string& prompt, const train::GenerationOptions& options,
                                         const std::function<void(const std::string&)>& on_text,
                                         std::vector<std::string>* notes) {
  using clock = std::chrono::steady_clock;
  const auto seconds = [](clock::time_point a) { return std::chrono::duration<double>(clock::now() - a).count(); };
  const auto note = [&](const std::string& n) {
    if (notes) notes->push_back(n);
  };
  NoGradGuard no_grad;
  model_->eval();
  // the prompt reads as a document's start: <eos> before it, as before every training verse
  std::vector<std::int64_t> prompt_ids = tokenizer_->encode(prompt);
  if (const auto unk = std::count(prompt_ids.begin(), prompt_ids.end(), Vocabulary::unk); unk > 0)
    note("the prompt has " + std::to_string(unk) + " characters the model has never seen: they read as <unk>");
  prompt_ids.insert(prompt_ids.begin(), Vocabulary::eos);
  const std::int64_t limit = context_;
  if (static_cast<std::int64_t>(prompt_ids.size()) > limit - 1) {
    note("the prompt's " + std::to_string(prompt_ids.size() - 1) + " tokens are more than the model's context of " +
         std::to_string(limit) + " allows: it reads the last " + std::to_string(limit - 1));
    prompt_ids.erase(prompt_ids.begin(), prompt_ids.end() - (limit - 1));
  }
  train::GenerationResult r;
  r.prompt_tokens = static_cast<std::int64_t>(prompt_ids.size());
  Generator gen(options.seed);
  nn::EncoderCache cache = model_->make_cache();
  std::vector<std::int64_t> window = prompt_ids;  // what the cache holds
  // the last position's logits (1, V), where <pad> and <bos> (never a training target) cannot win
  const auto last_logits = [](const Tensor& logits) {
    Tensor last = reshape(slice(logits, 1, logits.size(1) - 1, logits.size(1)), {1, -1}).contiguous().clone();
    for (const std::int64_t id : {Vocabulary::pad, Vocabulary::bos})
      last.data<float>()[id] = -std::numeric_limits<float>::infinity();
    return last;
  };
  auto start = clock::now();
  Tensor logits =
      last_logits(model_->forward(from_vector(window, {1, static_cast<std::int64_t>(window.size())}), &cache));
  r.prompt_seconds = seconds(start);
  start = clock::now();
  // the text streamed: the document being written decoded whole each step (subwords join with
  // their neighbours), minus what was already handed out
  std::vector<std::int64_t> document(prompt_ids.begin() + 1, prompt_ids.end());
  std::size_t shown = tokenizer_->decode(document).size();
  bool filled = false;
  for (std::int64_t i = 0; i < options.max_new_tokens; ++i) {
    const std::int64_t id = nn::sample(logits, options.sampling, gen).data<std::int64_t>()[0];
    ++r.new_tokens;
    document.push_back(id);
    std::string piece;
    const std::string text = tokenizer_->decode(document);
    if (id == Vocabulary::eos || !unfinished(text) || i + 1 == options.max_new_tokens) {
      piece = text.size() > shown ? text.substr(shown) : "";
      shown = text.size();
    }
    if (id == Vocabulary::eos) document.clear(), shown = 0;
    r.text += piece;
    if (on_text && !piece.empty()) on_text(piece);
    if (i + 1 == options.max_new_tokens) break;
    window.push_back(id);
    if (cache.length() < limit) {
      logits = last_logits(model_->forward(from_vector(std::vector<std::int64_t>{id}, {1, 1}), &cache));
      continue;
    }
    // the context is full: read its last half again from an empty cache, and go on
    if (!filled)
      note("the model's context of " + std::to_string(limit) + " tokens filled after " + std::to_string(i + 1) +
           " new tokens: from there it reads the last " + std::to_string(limit / 2) + " tokens at each refill");
    filled = true;
    window.erase(window.begin(), window.end() - limit / 2);
    cache = model_->make_cache();
    logits = last_logits(model_->forward(from_vector(window, {1, static_cast<std::int64_t>(window.size())}), &cache));
  }
  r.decode_seconds = seconds(start);
  model_->train();
  return r;
}

void LmTask::describe(train::Checkpoint& c) const {
  const nn::CausalLMOptions& o = model_->options;
  const nn::MultiheadAttention& attention = *(*model_->decoder->layers)[0].self_attn;
  c.meta_strings["vocabulary"] = tokenizer_->vocabulary().tokens();
  if (tokenizer_->is_subword()) c.meta_bytes["subwords"] = tokenizer_->subword_model().bytes();
  auto& a = c.architecture;
  a["model"] = std::string("causal_lm");
  a["vocab"] = o.vocab;
  a["d_model"] = o.layer.d_model;
  a["nhead"] = o.layer.nhead;
  a["num_kv_heads"] = attention.num_kv_heads;
  a["num_layers"] = o.num_layers;
  a["dim_feedforward"] = o.layer.dim_feedforward;
  a["activation"] = std::string("gelu");
  a["norm_first"] = std::int64_t{1};
  a["layer_norm_eps"] = o.layer.layer_norm_eps;
  a["bias"] = std::int64_t{o.layer.bias};
  a["positions"] = nn::position_kind_name(o.positions);
  if (o.positions == nn::PositionKind::rotary) {
    a["rope_base"] = o.layer.rope_base;
    a["rope_dim"] = attention.options.rope_dim > 0 ? attention.options.rope_dim : o.layer.d_model / o.layer.nhead;
  }
  a["max_positions"] = o.max_len;
  a["tie_output"] = std::int64_t{o.tie_output};
  a["attention_masks"] = std::string("causal");
  a["framing"] = std::string("<eos> before the first document and after each; a prompt is read after an <eos>");
  a["eos_id"] = Vocabulary::eos;
  a["unk_id"] = Vocabulary::unk;
  a["vocabulary"] = std::string("vocabulary");  // a key of /meta
  a["tokenization"] = std::string(tokenizer_->is_subword() ? "sentencepiece" : "char");
  a["tokenization_rule"] =
      std::string(tokenizer_->is_subword() ? "the SentencePiece model /meta/subwords (serialized ModelProto); "
                                             "token id = piece id; <eos> reads as a newline"
                                           : "UTF-8 code points (a space is a token); <eos> reads as a newline");
}

namespace {
const bool registered = train::register_task<LmTask, train::TextGenerator>(
    "lm", "a GPT-style decoder-only language model on the World English Bible or plain text, which continues text");
}  // namespace

}  // namespace rune::examples
