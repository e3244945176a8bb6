// Subword tokens through SentencePiece (Kudo & Richardson, 2018; Debian's libsentencepiece): a
// unigram or BPE model trained on sentences in memory, kept as its serialized bytes so that a
// checkpoint carries it whole (`/meta/<side>_subwords`) and translates with nothing else on disk.
//
// Token ids are fixed to the translation vocabulary's specials: <pad> 0, <bos> 1, <eos> 2, <unk> 3,
// so a model's pieces in id order are a Vocabulary as it is. Text is not normalised (SentencePiece's
// "identity" rule) beyond collapsing runs of spaces, and characters the model never saw fall back to
// their UTF-8 bytes, so decode(encode(text)) gives back the text, whatever it holds.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace rune::text {

struct SubwordOptions {
  std::int64_t vocab_size = 8000;      // pieces, the four specials and 256 byte pieces included
  std::string model_type = "unigram";  // or "bpe"
  double character_coverage = 1.0;     // of the training text's characters kept as pieces
};

class SubwordModel {
 public:
  // Trains on `sentences`. Throws std::invalid_argument naming the option at fault (a vocabulary
  // too large for the text, an unknown model type) and std::runtime_error on SentencePiece's errors.
  static SubwordModel train(const std::vector<std::string>& sentences, const SubwordOptions& options);
  // A serialized model (bytes()); `what` names where it came from in messages.
  static SubwordModel from_bytes(const std::string& bytes, const std::string& what);

  SubwordModel(SubwordModel&&) noexcept;
  SubwordModel& operator=(SubwordModel&&) noexcept;
  ~SubwordModel();

  const std::string& bytes() const { return bytes_; }
  std::int64_t size() const;                                         // pieces, specials included
  std::vector<std::string> pieces() const;                           // in id order
  std::vector<std::string> encode(const std::string& text) const;    // "▁In", "▁the", "▁begin", "ning", ","
  std::string decode(const std::vector<std::string>& pieces) const;  // specials are dropped
  // Per piece of encode(text): the index of the space-separated word it belongs to (a piece
  // starting with "▁" starts the next word).
  static std::vector<int> word_of_pieces(const std::vector<std::string>& pieces);

 private:
  SubwordModel() = default;
  std::string bytes_;
  std::unique_ptr<sentencepiece::SentencePieceProcessor> processor_;
};

}  // namespace rune::text
