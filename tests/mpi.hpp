// What the MPI tests share (tests/test_mpi.cpp, examples/*/tests/*_mpi.cpp): the fixture that
// lets mpirun run as root in a container with more ranks than cores, the rune binary on N ranks,
// and the comparison of N ranks' training against one process's.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <string>

#include "autograd/ops.hpp"
#include "tests/helpers.hpp"
#include "train/checkpoint.hpp"

namespace rune {

class Mpi : public ::testing::Test {
 protected:
  void SetUp() override {
    // as root (CI runs as root), in a container, and quiet about the cores it does not bind
    ::setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
    ::setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
    ::setenv("OMPI_MCA_btl_vader_single_copy_mechanism", "none", 1);
    ::setenv("OMPI_MCA_rmaps_base_oversubscribe", "1", 1);
  }
  OneThread one_thread_;
};

// `rune args` on `ranks` processes (0: without mpirun).
inline RunResult rune_on(int ranks, const std::string& args, const std::filesystem::path& dir) {
  const std::string mpirun = "'" RUNE_MPIEXEC "' -np " + std::to_string(ranks) + " --oversubscribe --bind-to none";
  return run_rune(args, dir.string(), ranks == 0 ? "" : mpirun);
}

// The relative difference of two checkpoints' parameters, tensor by tensor: |a - b| / |b| in the
// 2-norm, the largest over the tensors. Attention's key bias (the middle third of each
// in_proj_bias) is left out: its gradient is zero in exact arithmetic (a constant added to every
// key shifts each softmax row by a constant) and rounding noise in floats, which Adam divides by
// its own size into steps of about lr; any change in the order of summation changes those steps.
// It is returned in *key_bias_drift instead, the largest |a - b| there.
// How far (largest_relative_difference) training on other ranks may take the parameters from one
// process's after 10 steps. The ranks add the gradient in another order than one process's
// products do, so the two differ by rounding, which Adam's normalised steps carry: 1.4e-6 of the
// parameters' norm on 4 ranks with OpenBLAS's AVX-512 kernels, below 1e-6 with its AVX2 ones.
inline constexpr double kRanksTolerance = 3e-6;

inline double largest_relative_difference(const std::string& a_path, const std::string& b_path,
                                          double* key_bias_drift = nullptr) {
  const train::Checkpoint a = train::read_checkpoint(a_path), b = train::read_checkpoint(b_path);
  EXPECT_EQ(a.step, b.step);
  EXPECT_EQ(a.params.size(), b.params.size());
  const std::map<std::string, Tensor> in_a(a.params.begin(), a.params.end());
  double worst = 0, drift = 0;
  for (const auto& [name, tb] : b.params) {
    const auto va = to_dtype(in_a.at(name), DType::float64).to_vector<double>();
    const auto vb = to_dtype(tb, DType::float64).to_vector<double>();
    const bool packed = name.size() > 12 && name.compare(name.size() - 12, 12, "in_proj_bias") == 0;
    const std::size_t third = vb.size() / 3;
    double diff = 0, norm = 0;
    for (std::size_t i = 0; i < vb.size(); ++i) {
      if (packed && i >= third && i < 2 * third) {
        drift = std::max(drift, std::abs(va[i] - vb[i]));
        continue;
      }
      diff += (va[i] - vb[i]) * (va[i] - vb[i]);
      norm += vb[i] * vb[i];
    }
    worst = std::max(worst, std::sqrt(diff) / std::max(std::sqrt(norm), 1e-30));
  }
  if (key_bias_drift) *key_bias_drift = drift;
  return worst;
}

inline bool same_bits(const std::string& a_path, const std::string& b_path) {
  const train::Checkpoint a = train::read_checkpoint(a_path), b = train::read_checkpoint(b_path);
  const std::map<std::string, Tensor> in_a(a.params.begin(), a.params.end());
  for (const auto& [name, tb] : b.params)
    if (to_dtype(in_a.at(name), DType::float64).to_vector<double>() != to_dtype(tb, DType::float64).to_vector<double>())
      return false;
  return a.params.size() == b.params.size();
}

// The metrics of the last validation record of a run's metrics.jsonl (val_* keys).
inline std::map<std::string, double> last_validation(const std::string& path) {
  std::map<std::string, double> last;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    if (line.find("\"val_") == std::string::npos) continue;
    last.clear();
    const std::regex field("\"(val_[a-z_]+)\":([-0-9.eE+]+)");
    for (std::sregex_iterator it(line.begin(), line.end(), field), end; it != end; ++it)
      last[(*it)[1]] = std::stod((*it)[2]);
  }
  return last;
}

inline int buckets_said(const std::string& output) {
  std::smatch m;
  return std::regex_search(output, m, std::regex("summed in ([0-9]+) buckets")) ? std::stoi(m[1]) : 0;
}

// N ranks against one process, 10 AdamW steps, buckets small enough for 5 or more a step.
inline void expect_ranks_equal_one_process(const std::string& name, const std::string& config_text, double lr,
                                           const std::filesystem::path& dir) {
  std::ofstream(dir / (name + ".toml")) << config_text;
  const RunResult one = rune_on(0, "train " + name + ".toml --no-progress --set run.name=one", dir);
  ASSERT_EQ(one.status, 0) << one.output;
  for (const int ranks : {2, 4}) {
    const std::string run = "ranks" + std::to_string(ranks);
    const RunResult r =
        rune_on(ranks, "train " + name + ".toml --no-progress --set train.bucket_mb=0.004 --set run.name=" + run, dir);
    ASSERT_EQ(r.status, 0) << r.output;
    EXPECT_GE(buckets_said(r.output), 5) << r.output;
    EXPECT_EQ(r.output.find("run folder"), r.output.rfind("run folder")) << "rank 0 alone speaks\n" << r.output;
    double drift = 0;
    EXPECT_LT(largest_relative_difference((dir / "runs" / run / "checkpoints/last.h5").string(),
                                          (dir / "runs/one/checkpoints/last.h5").string(), &drift),
              kRanksTolerance)
        << name << " on " << ranks << " ranks";
    EXPECT_LT(drift, 2 * 10 * lr) << "the key biases move by at most about lr a step";
    // validation, sharded over the ranks, gives the one process's metrics
    const auto one_val = last_validation((dir / "runs/one/metrics.jsonl").string());
    const auto ranks_val = last_validation((dir / "runs" / run / "metrics.jsonl").string());
    ASSERT_FALSE(one_val.empty());
    EXPECT_EQ(ranks_val.size(), one_val.size());
    for (const auto& [key, value] : one_val)
      EXPECT_NEAR(ranks_val.at(key), value, 1e-5 * std::max(1.0, std::abs(value)))
          << name << " on " << ranks << " ranks: " << key;
  }
}

}  // namespace rune
