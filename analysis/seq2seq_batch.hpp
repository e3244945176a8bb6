// Head analysis of an encoder-decoder batch (nn::Seq2SeqTransformer), shared by the sequence
// tasks that offer HeadAnalysisSource.
#pragma once

#include "analysis/head_analysis.hpp"
#include "nn/seq2seq.hpp"

namespace rune::analysis {

// A padded, teacher-forced batch (src (B, S), tgt_in (B, T), tgt_out (B, T) int64, padded with the
// model's pad id): each example's mean token cross-entropy (unsmoothed) on the tape, and the valid
// counts of example b per attention module: encoder self (S_b, S_b), decoder self (T_b, T_b) and
// cross (T_b, S_b), S_b and T_b its source's and target's tokens that are not padding.
AnalysisBatch seq2seq_analysis_batch(const nn::Seq2SeqTransformer& model, const Tensor& src, const Tensor& tgt_in,
                                     const Tensor& tgt_out);

}  // namespace rune::analysis
