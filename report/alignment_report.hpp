// Word alignment from cross-attention as files a person reads (`rune align`): the table of every
// candidate's scores as CSV and Markdown, and one example's attention under the best head with its
// gold and predicted links as a PNG.
#pragma once

#include <string>
#include <vector>

#include "analysis/alignment.hpp"

namespace rune::report {

// Into `dir`: alignment.csv (a row per candidate: links, gold links, correct links, precision,
// recall, AER, the best head marked), alignment.md (the table, a sentence naming the best head,
// the split it was chosen on and the baseline, and the picture) and alignment.png (r.shown's
// word-level attention under the best head: target words as rows, source words as columns, gold
// links framed, predicted links dotted). `title` names the model. Returns the paths written.
std::vector<std::string> write_alignment_report(const analysis::AlignmentResult& r, const std::string& dir,
                                                const std::string& title);

// The sentence that names the best head (with its scores and the split that chose it) and the
// position baseline's AER, as the report and the console say it.
std::string alignment_summary(const analysis::AlignmentResult& r);

}  // namespace rune::report
