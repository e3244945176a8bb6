// Text as tokens for the models: words (split on ASCII whitespace) or characters (UTF-8 code
// points), and vocabularies that map them to ids with the four specials first: <pad> 0, <bos> 1,
// <eos> 2, <unk> 3 (SentencePiece models, text/subword.hpp, use the same four).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace rune::text {

// Subwords are SentencePiece pieces (text/subword.hpp); tokenize() and
// join() below handle words and characters only.
enum class Tokenization { word, character, subword };
Tokenization tokenization_from_name(const std::string& name);  // "word", "char" or "sentencepiece"

// Words split on ASCII whitespace; characters are UTF-8 code points (é and ç are one token; a space
// is a token of its own). join() undoes it.
std::vector<std::string> tokenize(const std::string& text, Tokenization t);
std::string join(const std::vector<std::string>& tokens, Tokenization t);

class Vocabulary {
 public:
  static constexpr std::int64_t pad = 0, bos = 1, eos = 2, unk = 3;
  Vocabulary();  // only the four specials
  // Tokens seen at least min_freq times in `texts`, in order of decreasing frequency (ties by token).
  static Vocabulary build(const std::vector<std::vector<std::string>>& texts, std::int64_t min_freq);
  explicit Vocabulary(std::vector<std::string> tokens);  // as stored in a checkpoint; specials first
  std::int64_t id(const std::string& token) const;       // unk if absent
  const std::string& token(std::int64_t id) const;
  std::int64_t size() const { return static_cast<std::int64_t>(tokens_.size()); }
  const std::vector<std::string>& tokens() const { return tokens_; }

 private:
  std::vector<std::string> tokens_;
  std::map<std::string, std::int64_t> ids_;
};

}  // namespace rune::text
