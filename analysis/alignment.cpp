#include "analysis/alignment.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <set>
#include <stdexcept>

#include "autograd/ops.hpp"
#include "train/files.hpp"
#include "train/progress.hpp"

namespace rune::analysis {

namespace {

using LinkSet = std::set<std::pair<int, int>>;

LinkSet as_set(const Links& links) { return LinkSet(links.begin(), links.end()); }

std::int64_t common(const LinkSet& a, const LinkSet& b) {
  std::int64_t n = 0;
  for (const auto& link : a) n += b.count(link) > 0;
  return n;
}

double ratio(std::int64_t num, std::int64_t den) {
  return den > 0 ? static_cast<double>(num) / static_cast<double>(den) : std::numeric_limits<double>::quiet_NaN();
}

// The element-wise mean of equally shaped matrices.
WordMatrix mean_of(const std::vector<WordMatrix>& ms) {
  WordMatrix out = ms.front();
  for (std::size_t i = 1; i < ms.size(); ++i)
    for (std::size_t t = 0; t < out.size(); ++t)
      for (std::size_t s = 0; s < out[t].size(); ++s) out[t][s] += ms[i][t][s];
  for (auto& row : out)
    for (double& v : row) v /= static_cast<double>(ms.size());
  return out;
}

// Every head's word-level attention, [layer][head].
std::vector<std::vector<WordMatrix>> head_attention(const AlignmentExample& e) {
  std::vector<std::vector<WordMatrix>> out;
  const int S = static_cast<int>(e.source_words.size()), T = static_cast<int>(e.target_words.size());
  for (const TokenAttention::Layer* l : cross_layers(e)) {
    const Tensor w = to_dtype(l->weights, DType::float64).contiguous();  // (H, Tq, Tk)
    const std::int64_t H = w.size(0), Tq = w.size(1), Tk = w.size(2);
    out.emplace_back();
    for (std::int64_t h = 0; h < H; ++h) {
      std::vector<std::vector<double>> rows;  // (Tq x Tk)
      for (std::int64_t q = 0; q < Tq; ++q)
        rows.emplace_back(w.data<double>() + (h * Tq + q) * Tk, w.data<double>() + (h * Tq + q + 1) * Tk);
      out.back().push_back(word_attention(rows, e.source_word_of, e.target_word_of, S, T));
    }
  }
  return out;
}

WordMatrix attention_of(const std::vector<std::vector<WordMatrix>>& heads, const AlignmentCandidate& c) {
  switch (c.kind) {
    case AlignmentCandidate::Kind::head:
      return heads.at(static_cast<std::size_t>(c.layer)).at(static_cast<std::size_t>(c.head));
    case AlignmentCandidate::Kind::layer_mean:
      return mean_of(heads.at(static_cast<std::size_t>(c.layer)));
    case AlignmentCandidate::Kind::all_mean: {
      std::vector<WordMatrix> all;
      for (const auto& layer : heads) all.insert(all.end(), layer.begin(), layer.end());
      return mean_of(all);
    }
    case AlignmentCandidate::Kind::position:
      break;
  }
  throw std::invalid_argument("the position baseline reads no attention");
}

}  // namespace

WordMatrix word_attention(const std::vector<std::vector<double>>& weights, const std::vector<int>& source_word_of,
                          const std::vector<int>& target_word_of, int source_words, int target_words) {
  if (weights.size() != target_word_of.size())
    throw std::invalid_argument("word_attention: " + std::to_string(weights.size()) + " query rows for " +
                                std::to_string(target_word_of.size()) + " row words");
  WordMatrix m(static_cast<std::size_t>(target_words), std::vector<double>(static_cast<std::size_t>(source_words), 0));
  std::vector<int> rows(static_cast<std::size_t>(target_words), 0);
  for (std::size_t q = 0; q < weights.size(); ++q) {
    const int t = target_word_of[q];
    if (t < 0) continue;
    if (weights[q].size() != source_word_of.size())
      throw std::invalid_argument("word_attention: query row " + std::to_string(q) + " has " +
                                  std::to_string(weights[q].size()) + " keys for " +
                                  std::to_string(source_word_of.size()) + " key words");
    ++rows[static_cast<std::size_t>(t)];
    for (std::size_t k = 0; k < weights[q].size(); ++k)
      if (source_word_of[k] >= 0)
        m[static_cast<std::size_t>(t)][static_cast<std::size_t>(source_word_of[k])] += weights[q][k];
  }
  for (std::size_t t = 0; t < m.size(); ++t)
    if (rows[t] > 1)
      for (double& v : m[t]) v /= rows[t];
  return m;
}

Links argmax_links(const WordMatrix& m) {
  Links links;
  for (std::size_t t = 0; t < m.size(); ++t) {
    if (m[t].empty()) continue;
    const auto best = std::max_element(m[t].begin(), m[t].end());  // the first of equals
    if (*best > 0) links.emplace_back(static_cast<int>(best - m[t].begin()), static_cast<int>(t));
  }
  return links;
}

Links position_links(int source_words, int target_words) {
  Links links;
  if (source_words <= 0) return links;
  for (int j = 0; j < target_words; ++j)
    links.emplace_back(
        static_cast<int>(std::lround(static_cast<double>(j) * (source_words - 1) / std::max(target_words - 1, 1))), j);
  return links;
}

AlignmentCounts& AlignmentCounts::operator+=(const AlignmentCounts& o) {
  predicted += o.predicted;
  sure += o.sure;
  predicted_sure += o.predicted_sure;
  predicted_possible += o.predicted_possible;
  return *this;
}

double AlignmentCounts::precision() const { return ratio(predicted_possible, predicted); }
double AlignmentCounts::recall() const { return ratio(predicted_sure, sure); }
double AlignmentCounts::aer() const { return 1 - ratio(predicted_sure + predicted_possible, predicted + sure); }

AlignmentCounts count_links(const Links& predicted, const Links& sure, const Links& possible) {
  const LinkSet a = as_set(predicted), s = as_set(sure);
  LinkSet p = as_set(possible);
  p.insert(s.begin(), s.end());
  AlignmentCounts c;
  c.predicted = static_cast<std::int64_t>(a.size());
  c.sure = static_cast<std::int64_t>(s.size());
  c.predicted_sure = common(a, s);
  c.predicted_possible = common(a, p);
  return c;
}

AlignmentCounts count_links(const Links& predicted, const Links& gold) { return count_links(predicted, gold, gold); }

std::string AlignmentCandidate::name() const {
  switch (kind) {
    case Kind::head:
      return "layer " + std::to_string(layer) + " head " + std::to_string(head);
    case Kind::layer_mean:
      return "layer " + std::to_string(layer) + " mean";
    case Kind::all_mean:
      return "all heads mean";
    case Kind::position:
      break;
  }
  return "position baseline";
}

std::vector<AlignmentCandidate> alignment_candidates(const std::vector<std::int64_t>& heads_per_layer) {
  using Kind = AlignmentCandidate::Kind;
  std::vector<AlignmentCandidate> out;
  for (std::size_t l = 0; l < heads_per_layer.size(); ++l)
    for (std::int64_t h = 0; h < heads_per_layer[l]; ++h)
      out.push_back({Kind::head, static_cast<std::int64_t>(l), h, {}});
  for (std::size_t l = 0; l < heads_per_layer.size(); ++l)
    out.push_back({Kind::layer_mean, static_cast<std::int64_t>(l), -1, {}});
  out.push_back({Kind::all_mean, -1, -1, {}});
  out.push_back({Kind::position, -1, -1, {}});
  return out;
}

std::vector<const TokenAttention::Layer*> cross_layers(const AlignmentExample& e) {
  const auto fail = [&](const std::string& what) {
    throw std::invalid_argument("alignment of " + e.name + ": " + what);
  };
  const auto S = static_cast<int>(e.source_words.size()), T = static_cast<int>(e.target_words.size());
  for (int w : e.source_word_of)
    if (w < -1 || w >= S)
      fail("a key token of source word " + std::to_string(w) + ", of " + std::to_string(S) + " source words");
  for (int w : e.target_word_of)
    if (w < -1 || w >= T)
      fail("a query row of target word " + std::to_string(w) + ", of " + std::to_string(T) + " target words");
  for (const auto& [s, t] : e.gold)
    if (s < 0 || s >= S || t < 0 || t >= T)
      fail("gold link (" + std::to_string(s) + ", " + std::to_string(t) + ") outside its " + std::to_string(S) +
           " source and " + std::to_string(T) + " target words");
  std::vector<const TokenAttention::Layer*> layers;
  for (const TokenAttention::Layer& l : e.attention.layers) {
    if (l.kind != "cross") continue;
    const Tensor& w = l.weights;
    if (w.dim() != 3 || w.size(1) != static_cast<std::int64_t>(e.target_word_of.size()) ||
        w.size(2) != static_cast<std::int64_t>(e.source_word_of.size()))
      fail("cross layer " + std::to_string(l.layer) + " weights " + shape_str(w.shape()) + " are not (H, " +
           std::to_string(e.target_word_of.size()) + " query rows, " + std::to_string(e.source_word_of.size()) +
           " key tokens)");
    layers.push_back(&l);
  }
  if (layers.empty()) fail("no cross-attention layer in its attention");
  return layers;
}

WordMatrix candidate_attention(const AlignmentExample& e, const AlignmentCandidate& c) {
  return attention_of(head_attention(e), c);
}

Links candidate_links(const AlignmentExample& e, const AlignmentCandidate& c) {
  if (c.kind == AlignmentCandidate::Kind::position)
    return position_links(static_cast<int>(e.source_words.size()), static_cast<int>(e.target_words.size()));
  return argmax_links(candidate_attention(e, c));
}

void AlignmentScorer::add(const AlignmentExample& e) {
  const std::vector<std::vector<WordMatrix>> heads = head_attention(e);
  std::vector<std::int64_t> counts;
  for (const auto& layer : heads) counts.push_back(static_cast<std::int64_t>(layer.size()));
  if (examples_ == 0) {
    heads_ = counts;
    candidates_ = alignment_candidates(heads_);
  } else if (counts != heads_) {
    const auto text = [](const std::vector<std::int64_t>& v) {
      std::string s;
      for (std::int64_t h : v) s += (s.empty() ? "" : ", ") + std::to_string(h);
      return "(" + s + ")";
    };
    throw std::invalid_argument("alignment of " + e.name + ": cross layers of " + text(counts) +
                                " heads, where the examples before it had " + text(heads_));
  }
  for (AlignmentCandidate& c : candidates_) {
    const Links links =
        c.kind == AlignmentCandidate::Kind::position
            ? position_links(static_cast<int>(e.source_words.size()), static_cast<int>(e.target_words.size()))
            : argmax_links(attention_of(heads, c));
    c.counts += count_links(links, e.gold);
  }
  ++examples_;
  gold_links_ += static_cast<std::int64_t>(as_set(e.gold).size());
}

std::size_t best_head(const std::vector<AlignmentCandidate>& candidates) {
  std::size_t best = candidates.size();
  for (std::size_t i = 0; i < candidates.size(); ++i) {
    const double aer = candidates[i].counts.aer();
    if (candidates[i].kind != AlignmentCandidate::Kind::head || std::isnan(aer)) continue;
    if (best == candidates.size() || aer < candidates[best].counts.aer()) best = i;
  }
  if (best == candidates.size()) throw std::invalid_argument("best_head: no head has an alignment error rate");
  return best;
}

std::string alignment_rows_name(AlignmentRows rows) { return rows == AlignmentRows::predicts ? "predicts" : "reads"; }

std::vector<int> reading_rows(const std::vector<int>& predicting_rows) {
  std::vector<int> out(predicting_rows.size(), -1);
  for (std::size_t q = 1; q < out.size(); ++q) out[q] = predicting_rows[q - 1];
  return out;
}

AlignmentResult align_examples(AlignmentSource& source, const AlignmentOptions& options) {
  const std::int64_t n = source.prepare_alignment(options.split, options.limit);
  if (n <= 0) throw std::invalid_argument("the " + options.split + " split has no example with gold alignments");
  if (options.example < 0 || options.example >= n)
    throw std::invalid_argument("example " + std::to_string(options.example) + " is out of range: the " +
                                options.split + " split has " + std::to_string(n) +
                                " examples with gold alignments (0.." + std::to_string(n - 1) + ")");
  AlignmentResult r;
  r.split = options.split;
  AlignmentScorer scorer;
  train::ProgressLine progress(options.progress, 10);
  const auto start = train::ProgressLine::Clock::now();
  for (std::int64_t i = 0; i < n; ++i) {
    AlignmentExample e = source.alignment_example(i);
    if (options.rows == AlignmentRows::reads) e.target_word_of = reading_rows(e.target_word_of);
    scorer.add(e);
    if (i == options.example) r.shown = std::move(e);
    progress.show(train::ProgressLine::status("align: example", i + 1, n, start));
  }
  progress.line("align: " + std::to_string(n) + " examples of the " + options.split + " split in " +
                train::duration(std::chrono::duration<double>(train::ProgressLine::Clock::now() - start).count()));
  r.examples = scorer.examples();
  r.gold_links = scorer.gold_links();
  r.candidates = scorer.candidates();
  r.best = best_head(r.candidates);
  r.best_chosen_on = options.split;
  r.rows = options.rows;
  return r;
}

}  // namespace rune::analysis
