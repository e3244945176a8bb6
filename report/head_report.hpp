// The head analysis as files a person reads: a Markdown report, CSV tables and PNG pictures.
#pragma once

#include <string>
#include <vector>

#include "analysis/head_analysis.hpp"

namespace rune::report {

// Into `dir`: heads.md (the report), heads.csv (a row per head), redundancy.csv (every pair),
// head_patterns.png (the pattern-class map), head_importance.png (the importance heatmap),
// pattern_shares.csv and head_pattern_shares.png (each module's heads counted by pattern class, as
// a stacked bar per module), heads.json (the counts for a program: heads, pairs, redundant pairs,
// dead heads, heads per pattern class and, after pruning, the unpruned metrics and the prunable
// heads per metric) and, after prune_heads, pruning.csv and pruning.png. Returns the paths written.
std::vector<std::string> write_head_report(const analysis::HeadAnalysis& analysis, const std::string& dir,
                                           const std::string& title);

}  // namespace rune::report
