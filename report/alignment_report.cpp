#include "report/alignment_report.hpp"

#include <filesystem>
#include <sstream>

#include "report/csv.hpp"
#include "report/plot.hpp"
#include "train/files.hpp"
#include "train/format.hpp"

namespace rune::report {
namespace fs = std::filesystem;
using namespace analysis;
using train::fixed;

namespace {

const AlignmentCandidate& baseline_of(const AlignmentResult& r) {
  for (const AlignmentCandidate& c : r.candidates)
    if (c.kind == AlignmentCandidate::Kind::position) return c;
  throw std::invalid_argument("alignment report: no position baseline among the candidates");
}

std::string scores(const AlignmentCounts& c) {
  return "AER " + fixed(c.aer(), 3) + ", precision " + fixed(c.precision(), 3) + ", recall " + fixed(c.recall(), 3);
}

}  // namespace

std::string alignment_summary(const AlignmentResult& r) {
  const AlignmentCandidate& best = r.candidates.at(r.best);
  return "The best head, chosen by its AER on the " + r.best_chosen_on + " split, is " + best.name() + " (" +
         scores(best.counts) + " on the " + r.split + " split); the position baseline reaches " +
         scores(baseline_of(r).counts) + ".";
}

std::vector<std::string> write_alignment_report(const AlignmentResult& r, const std::string& dir,
                                                const std::string& title) {
  fs::create_directories(dir);
  const std::string csv_path = (fs::path(dir) / "alignment.csv").string(),
                    md_path = (fs::path(dir) / "alignment.md").string(),
                    png_path = (fs::path(dir) / "alignment.png").string();
  const AlignmentCandidate& best = r.candidates.at(r.best);

  Csv csv({"candidate", "layer", "head", "links", "gold_links", "correct_links", "precision", "recall", "aer", "best"});
  for (std::size_t i = 0; i < r.candidates.size(); ++i) {
    const AlignmentCandidate& c = r.candidates[i];
    csv.row({CsvField::quoted(c.name()), c.layer >= 0 ? CsvField(c.layer) : CsvField::empty(),
             c.head >= 0 ? CsvField(c.head) : CsvField::empty(), c.counts.predicted, c.counts.sure,
             c.counts.predicted_sure, c.counts.precision(), c.counts.recall(), c.counts.aer(),
             i == r.best ? "yes" : "no"});
  }

  std::ostringstream md;
  md << "# Word alignment from cross-attention: " << title << "\n\n"
     << r.examples << " examples of the " << r.split << " split with " << r.gold_links << " gold links. "
     << "Every head of the cross-attention of every decoder layer is a candidate, and so are each layer's mean "
     << "over its heads and the mean over all. Each target word is linked to the source word it attends to most: "
     << "the weights summed over the "
     << "tokens of each source word and averaged over the decoder rows that "
     << (r.rows == AlignmentRows::predicts ? "predict the tokens of the target word"
                                           : "read the tokens of the target word as input (shift-att, `--rows reads`)")
     << ", special tokens left out. The position baseline links target word j of T to source word "
     << "round(j (S - 1) / max(T - 1, 1)) of S. Scores are over the whole split (links counted over all examples): "
     << "precision |A ∩ G| / |A|, recall |A ∩ G| / |G| and the alignment error rate AER = 1 - 2 |A ∩ G| / "
     << "(|A| + |G|) (Och & Ney 2003, with the gold links G as both sure and possible links).\n\n"
     << alignment_summary(r) << "\n\n"
     << "| candidate | links | correct | precision | recall | AER |\n|---|---:|---:|---:|---:|---:|\n";
  for (std::size_t i = 0; i < r.candidates.size(); ++i) {
    const AlignmentCandidate& c = r.candidates[i];
    md << "| " << (i == r.best ? "**" + c.name() + "** (best)" : c.name()) << " | " << c.counts.predicted << " | "
       << c.counts.predicted_sure << " | " << fixed(c.counts.precision(), 3) << " | " << fixed(c.counts.recall(), 3)
       << " | " << fixed(c.counts.aer(), 3) << " |\n";
  }
  md << "\n![" << best.name() << " on " << r.shown.name << "](alignment.png)\n\n"
     << "`alignment.png`: " << r.shown.name << " under " << best.name()
     << ", target words as rows and source words as columns; amber frames are gold links, red dots the "
        "predicted ones.\n";

  // the picture: rows are target words, so a link (source, target) is the cell (target, source)
  const Links predicted = candidate_links(r.shown, best), &gold = r.shown.gold;
  const AlignmentCounts shown = count_links(predicted, gold);
  Heatmap map{best.name() + " (best head on the " + r.best_chosen_on + " split): " +
                  std::to_string(shown.predicted_sure) + " of " + std::to_string(shown.sure) + " gold links found",
              candidate_attention(r.shown, best), r.shown.target_words, r.shown.source_words};
  const auto cells = [](const Links& links) {
    std::vector<std::pair<int, int>> out;
    for (const auto& [s, t] : links) out.emplace_back(t, s);
    return out;
  };
  plot_alignment(png_path, title + ": " + r.shown.name, map, cells(gold), cells(predicted));
  csv.write(csv_path);
  train::write_file(md_path, md.str(), "report");
  return {csv_path, md_path, png_path};
}

}  // namespace rune::report
