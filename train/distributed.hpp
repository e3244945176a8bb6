// Data-parallel training over MPI: the processes of one run (Communicator), and the summing of
// their gradients in buckets while backward runs (GradientReducer).
//
// `mpirun -np N rune train CONFIG` starts N processes, the ranks. Each builds the same task and
// model, takes rank 0's initial parameters, and computes the loss of its share of every global
// batch (train/task.hpp's Shard). Its loss is weighted by its share of the batch's items (tokens,
// images), so that the ranks' gradients summed are the gradient of the global batch's mean loss:
// what one process computes with the whole batch, up to the order of summation. The optimizer
// then takes the same step on every rank, and the parameters stay identical.
//
// The GradientReducer sums gradients with MPI_Allreduce on float32 buckets of about
// train.bucket_mb each. Parameters go into buckets in the reverse of their registration order
// (backward reaches the last layers first); a bucket's allreduce starts, non-blocking, as soon as
// its last gradient is final (autograd's GradReadyHook), so that it runs while backward computes
// the earlier layers' gradients. Buckets start in bucket order on every rank, as collective calls
// must be matched.
//
// Without mpirun (or with a build without MPI, RUNE_MPI=OFF) the world is one process and nothing
// here communicates.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "autograd/tensor.hpp"

namespace rune::train {

class Communicator {
 public:
  // This run's processes: MPI_COMM_WORLD when launched by mpirun or srun (MPI is initialised on the
  // first call and finalised at exit), else a world of one.
  static Communicator& world();
  // True when the build has MPI; "Open MPI v4.1.4 ..." or "built without MPI (RUNE_MPI=OFF)".
  static bool built_with_mpi();
  static std::string library_version();

  int rank() const { return rank_; }
  int size() const { return size_; }
  bool distributed() const { return size_ > 1; }

  // Rank `root`'s bytes into every rank's buffer.
  void broadcast(void* data, std::size_t bytes, int root = 0) const;
  // Every rank's values summed, element by element, in every rank's buffer (float64).
  void allreduce_sum(double* values, std::size_t n) const;
  // Every rank's string, in rank order, on every rank.
  std::vector<std::string> allgather(const std::string& mine) const;
  // True when `value` is the same on every rank.
  bool same_everywhere(std::uint64_t value) const;
  void barrier() const;
  // Ends every rank of the run with `code` (MPI_Abort); exits when not distributed.
  [[noreturn]] void abort(int code) const;

 private:
  Communicator();
  int rank_ = 0, size_ = 1;
};

// Rank 0's parameter values into every rank's parameters.
void broadcast_parameters(const Communicator& comm, const std::vector<Tensor>& params);

// Every floating buffer (a batch norm's running statistics) replaced by its mean over the ranks;
// integer buffers (counts, the same on every rank) are left alone. Each rank's running statistics
// follow its own shard of the batches, so before the ranks validate their shards of the split
// and rank 0 saves a checkpoint, they agree on the mean: the statistics of all the batches, the
// same on every rank, and what the checkpoint holds.
void average_buffers(const Communicator& comm, const std::vector<Tensor>& buffers);

// A 64-bit digest of the parameters' bytes (FNV-1a): equal on every rank when they are identical.
std::uint64_t parameter_digest(const std::vector<Tensor>& params);

class GradientReducer {
 public:
  // params: the model's parameters (float32, each needing a gradient), in registration order.
  GradientReducer(const Communicator& comm, const std::vector<Tensor>& params, std::size_t bucket_bytes);
  ~GradientReducer();
  GradientReducer(const GradientReducer&) = delete;
  GradientReducer& operator=(const GradientReducer&) = delete;

  // Runs loss.backward() and sums every parameter's gradient over the ranks, bucket by bucket as
  // backward goes; on return each parameter's grad holds the sum (zeros where no gradient reached
  // a parameter on any rank). An undefined loss (a rank with no rows in this batch) contributes
  // the gradients already there: zeros after zero_grad().
  void backward(const Tensor& loss);

  std::size_t buckets() const;
  // The last backward(): seconds spent inside it in total, and waiting for allreduces after
  // backward itself had finished (the communication that did not overlap it).
  double backward_seconds() const { return backward_s_; }
  double wait_seconds() const { return wait_s_; }
  // The last backward(): when (steady-clock seconds) this rank's backward itself ended, and when
  // the last sum was in. On one machine the ranks' clocks agree, so the latest `reduced_at` less
  // the latest `backward_ended_at` is the communication nothing hid, apart from the ranks' skew.
  double backward_ended_at() const { return backward_end_; }
  double reduced_at() const { return reduced_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  double backward_s_ = 0, wait_s_ = 0, backward_end_ = 0, reduced_ = 0;
};

// The dropout seed of `rank` at `step` in a run of more than one process: a function of (seed,
// rank, step) only, so that ranks draw different streams and a resumed run, on any number of
// ranks, draws what an uninterrupted one would.
std::uint64_t dropout_seed(std::uint64_t seed, int rank, std::int64_t step);

}  // namespace rune::train
