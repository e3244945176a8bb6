// A decoder-only language model (nn/causal_lm.hpp) trained on the English of the World English
// Bible (Debian's sword-text-web), or on plain text files: next-token prediction over windows of
// data.context tokens, characters or SentencePiece subwords. Validation and test are held-out
// books (Joshua and Romans; Acts), as in the translation task. It continues text
// (`rune generate CKPT --prompt TEXT`) with the KV cache.
//
// Metrics per split: loss (nats per token), perplexity (its exp), bits_per_char (the split's total
// loss over its characters, in bits: comparable between tokenizations) and tokens.
//
// Config keys: data.source, data.module, data.sword_path, data.train_file, data.val_file,
// data.test_file, data.tokenization, data.vocab_size, data.subword_model, data.context,
// data.batch_size, data.batches_per_epoch, data.eval_tokens; model.d_model, model.nhead,
// model.num_kv_heads, model.num_layers, model.dim_feedforward, model.dropout, model.positions,
// model.rope_base, model.rope_dim, model.tie_output, model.attention_kernel.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "examples/lm/lm_data.hpp"
#include "nn/causal_lm.hpp"
#include "train/task.hpp"

namespace rune::examples {

class LmTask : public train::Task, public train::TextGenerator {
 public:
  LmTask(train::Config& config, const train::TaskContext& context);
  nn::Module& model() override { return *model_; }
  std::int64_t batches_per_epoch() const override { return batches_per_epoch_; }
  train::BatchLoss train_batch(std::int64_t epoch, std::int64_t index) override;
  bool shards_batches() const override { return true; }
  std::map<std::string, double> evaluate(const std::string& split) override;
  std::string primary_metric() const override { return "bits_per_char"; }
  bool higher_is_better() const override { return false; }
  std::string items_name() const override { return "tokens"; }
  void describe(train::Checkpoint& c) const override;
  std::vector<std::string> no_decay_patterns() const override;

  train::GenerationResult generate(const std::string& prompt, const train::GenerationOptions& options,
                                   const std::function<void(const std::string&)>& on_text,
                                   std::vector<std::string>* notes) override;

  const nn::CausalLM& lm() const { return *model_; }
  const LmTokenizer& tokenizer() const { return *tokenizer_; }
  const TokenStream& stream(const std::string& split) const;  // "train", "val" or "test"
  // The training stream's offsets of batch `index` of `epoch`: batch_size windows, drawn from
  // (seed, epoch, index) alone, so a resumed run or a twin in another framework sees the same.
  std::vector<std::int64_t> window_offsets(std::int64_t epoch, std::int64_t index) const;

 private:
  std::uint64_t seed_;
  std::string source_;
  std::int64_t context_ = 0, batch_size_ = 0, batches_per_epoch_ = 0, eval_tokens_ = 0;
  std::unique_ptr<LmTokenizer> tokenizer_;
  TokenStream train_, val_, test_;
  std::shared_ptr<nn::CausalLM> model_;
};

}  // namespace rune::examples
