#include "text/tokens.hpp"

#include <algorithm>
#include <sstream>
#include <stdexcept>

#include "text/utf8.hpp"

namespace rune::text {

Tokenization tokenization_from_name(const std::string& name) {
  if (name == "word") return Tokenization::word;
  if (name == "char") return Tokenization::character;
  if (name == "sentencepiece") return Tokenization::subword;
  throw std::invalid_argument("tokenization '" + name + "' is not one of word, char, sentencepiece");
}

std::vector<std::string> tokenize(const std::string& text, Tokenization t) {
  std::vector<std::string> out;
  if (t == Tokenization::word) {
    std::istringstream in(text);
    for (std::string w; in >> w;) out.push_back(w);
    return out;
  }
  for (std::size_t i = 0; i < text.size();) {
    const std::size_t n = utf8_sequence_length(static_cast<unsigned char>(text[i]));
    out.push_back(text.substr(i, n));
    i += n;
  }
  return out;
}

std::string join(const std::vector<std::string>& tokens, Tokenization t) {
  std::string s;
  for (const std::string& tok : tokens) s += (t == Tokenization::word && !s.empty() ? " " : "") + tok;
  return s;
}

Vocabulary::Vocabulary() : Vocabulary(std::vector<std::string>{"<pad>", "<bos>", "<eos>", "<unk>"}) {}

Vocabulary::Vocabulary(std::vector<std::string> tokens) : tokens_(std::move(tokens)) {
  if (tokens_.size() < 4 || tokens_[0] != "<pad>" || tokens_[1] != "<bos>" || tokens_[2] != "<eos>" ||
      tokens_[3] != "<unk>")
    throw std::invalid_argument("Vocabulary: the first tokens must be <pad> <bos> <eos> <unk>");
  for (std::size_t i = 0; i < tokens_.size(); ++i)
    if (!ids_.emplace(tokens_[i], static_cast<std::int64_t>(i)).second)
      throw std::invalid_argument("Vocabulary: token '" + tokens_[i] + "' appears twice");
}

Vocabulary Vocabulary::build(const std::vector<std::vector<std::string>>& texts, std::int64_t min_freq) {
  std::map<std::string, std::int64_t> freq;
  for (const auto& t : texts)
    for (const auto& tok : t) ++freq[tok];
  std::vector<std::pair<std::string, std::int64_t>> kept;
  for (const auto& [tok, f] : freq)
    if (f >= min_freq) kept.emplace_back(tok, f);
  std::stable_sort(kept.begin(), kept.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  std::vector<std::string> tokens{"<pad>", "<bos>", "<eos>", "<unk>"};
  for (const auto& [tok, f] : kept)
    if (std::find(tokens.begin(), tokens.begin() + 4, tok) == tokens.begin() + 4) tokens.push_back(tok);
  return Vocabulary(std::move(tokens));
}

std::int64_t Vocabulary::id(const std::string& token) const {
  const auto it = ids_.find(token);
  return it == ids_.end() ? unk : it->second;
}

const std::string& Vocabulary::token(std::int64_t id) const {
  if (id < 0 || id >= size()) throw std::out_of_range("Vocabulary: id " + std::to_string(id) + " is out of range");
  return tokens_[static_cast<std::size_t>(id)];
}

}  // namespace rune::text
