#include "train/distributed.hpp"

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <unordered_map>

#include "autograd/ops.hpp"
#include "autograd/tape.hpp"

#ifdef RUNE_WITH_MPI
#include <mpi.h>
#endif

namespace rune::train {

namespace {

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

#ifdef RUNE_WITH_MPI
// Launched by mpirun (Open MPI), by another PMI launcher, or by srun: only then is MPI started, so
// that a plain `rune train` never pays for it.
bool launched_by_mpi() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE", "PMI_RANK"})
    if (std::getenv(v)) return true;
  return false;
}

void finalize_at_exit() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

void check(int code, const char* what) {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  throw std::runtime_error(std::string(what) + ": " + std::string(text, static_cast<std::size_t>(length)));
}
#endif

}  // namespace

// ---------------------------------------------------------------- Communicator

Communicator::Communicator() {
#ifdef RUNE_WITH_MPI
  if (!launched_by_mpi()) return;
  int provided = 0;
  // the training loop calls MPI from its own thread only (the data-preparation threads never do)
  check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
  std::atexit(finalize_at_exit);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
#endif
}

Communicator& Communicator::world() {
  static Communicator c;
  return c;
}

bool Communicator::built_with_mpi() {
#ifdef RUNE_WITH_MPI
  return true;
#else
  return false;
#endif
}

std::string Communicator::library_version() {
#ifdef RUNE_WITH_MPI
  char text[MPI_MAX_LIBRARY_VERSION_STRING];
  int length = 0;
  MPI_Get_library_version(text, &length);
  std::string v(text, static_cast<std::size_t>(length));
  const auto end = v.find_first_of(",\n");
  return end == std::string::npos ? v : v.substr(0, end);
#else
  return "built without MPI (RUNE_MPI=OFF)";
#endif
}

void Communicator::broadcast([[maybe_unused]] void* data, [[maybe_unused]] std::size_t bytes,
                             [[maybe_unused]] int root) const {
#ifdef RUNE_WITH_MPI
  if (!distributed()) return;
  auto* p = static_cast<char*>(data);
  constexpr std::size_t kChunk = 1u << 30;  // MPI counts are ints
  for (std::size_t at = 0; at < bytes; at += kChunk)
    check(MPI_Bcast(p + at, static_cast<int>(std::min(kChunk, bytes - at)), MPI_BYTE, root, MPI_COMM_WORLD),
          "MPI_Bcast");
#endif
}

void Communicator::allreduce_sum([[maybe_unused]] double* values, [[maybe_unused]] std::size_t n) const {
#ifdef RUNE_WITH_MPI
  if (!distributed()) return;
  check(MPI_Allreduce(MPI_IN_PLACE, values, static_cast<int>(n), MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD), "MPI_Allreduce");
#endif
}

std::vector<std::string> Communicator::allgather(const std::string& mine) const {
#ifdef RUNE_WITH_MPI
  if (distributed()) {
    const int length = static_cast<int>(mine.size());
    std::vector<int> lengths(static_cast<std::size_t>(size_)), offsets(static_cast<std::size_t>(size_), 0);
    check(MPI_Allgather(&length, 1, MPI_INT, lengths.data(), 1, MPI_INT, MPI_COMM_WORLD), "MPI_Allgather");
    for (std::size_t r = 1; r < lengths.size(); ++r) offsets[r] = offsets[r - 1] + lengths[r - 1];
    std::string all(static_cast<std::size_t>(offsets.back() + lengths.back()), '\0');
    check(MPI_Allgatherv(mine.data(), length, MPI_CHAR, all.data(), lengths.data(), offsets.data(), MPI_CHAR,
                         MPI_COMM_WORLD),
          "MPI_Allgatherv");
    std::vector<std::string> out;
    for (std::size_t r = 0; r < lengths.size(); ++r)
      out.push_back(all.substr(static_cast<std::size_t>(offsets[r]), static_cast<std::size_t>(lengths[r])));
    return out;
  }
#endif
  return {mine};
}

bool Communicator::same_everywhere(std::uint64_t value) const {
#ifdef RUNE_WITH_MPI
  if (!distributed()) return true;
  std::uint64_t low = value, high = value;
  check(MPI_Allreduce(MPI_IN_PLACE, &low, 1, MPI_UINT64_T, MPI_MIN, MPI_COMM_WORLD), "MPI_Allreduce");
  check(MPI_Allreduce(MPI_IN_PLACE, &high, 1, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD), "MPI_Allreduce");
  return low == high;
#else
  (void)value;
  return true;
#endif
}

void Communicator::barrier() const {
#ifdef RUNE_WITH_MPI
  if (distributed()) check(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier");
#endif
}

void Communicator::abort(int code) const {
#ifdef RUNE_WITH_MPI
  if (distributed()) MPI_Abort(MPI_COMM_WORLD, code);
#endif
  std::exit(code);
}

void broadcast_parameters(const Communicator& comm, const std::vector<Tensor>& params) {
  if (!comm.distributed()) return;
  for (const Tensor& p : params) {
    if (!p.is_contiguous()) throw std::logic_error("broadcast_parameters: a parameter is not contiguous");
    comm.broadcast(p.raw_data(), static_cast<std::size_t>(p.numel()) * dtype_size(p.dtype()), 0);
  }
}

void average_buffers(const Communicator& comm, const std::vector<Tensor>& buffers) {
  if (!comm.distributed()) return;
  std::vector<double> values;  // every floating buffer's values, one after the other
  for (const Tensor& b : buffers) {
    if (b.dtype() != DType::float32 && b.dtype() != DType::float64) continue;
    if (!b.is_contiguous()) throw std::logic_error("average_buffers: a buffer is not contiguous");
    const std::vector<double> v = to_dtype(b, DType::float64).to_vector<double>();
    values.insert(values.end(), v.begin(), v.end());
  }
  if (values.empty()) return;
  comm.allreduce_sum(values.data(), values.size());
  const double ranks = comm.size();
  std::size_t at = 0;
  for (const Tensor& b : buffers) {
    const std::size_t n = static_cast<std::size_t>(b.numel());
    if (b.dtype() == DType::float32) {
      float* out = static_cast<float*>(b.raw_data());
      for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<float>(values[at + i] / ranks);
    } else if (b.dtype() == DType::float64) {
      double* out = static_cast<double*>(b.raw_data());
      for (std::size_t i = 0; i < n; ++i) out[i] = values[at + i] / ranks;
    } else {
      continue;
    }
    at += n;
  }
}

std::uint64_t parameter_digest(const std::vector<Tensor>& params) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (const Tensor& p : params) {
    const Tensor c = p.contiguous();
    const auto* bytes = static_cast<const unsigned char*>(c.raw_data());
    const std::size_t n = static_cast<std::size_t>(c.numel()) * dtype_size(c.dtype());
    std::size_t i = 0;
    for (; i + 8 <= n; i += 8) {  // eight bytes a round: the whole model in a few milliseconds
      std::uint64_t w;
      std::memcpy(&w, bytes + i, 8);
      h = (h ^ w) * 0x100000001b3ULL;
    }
    for (; i < n; ++i) h = (h ^ bytes[i]) * 0x100000001b3ULL;
  }
  return h;
}

std::uint64_t dropout_seed(std::uint64_t seed, int rank, std::int64_t step) {
  // splitmix64 over the three, so that nearby (rank, step) give unrelated seeds
  std::uint64_t z = seed ^ (0x9E3779B97F4A7C15ULL * (static_cast<std::uint64_t>(rank) + 1)) ^
                    (0xD1B54A32D192ED03ULL * (static_cast<std::uint64_t>(step) + 1));
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// ---------------------------------------------------------------- GradientReducer

struct GradientReducer::Impl {
  struct Slot {
    Tensor param;
    std::size_t bucket = 0, offset = 0, numel = 0;
    bool ready = false;
  };
  struct Bucket {
    std::vector<float> data;
    std::size_t members = 0, ready = 0;
    bool started = false;
#ifdef RUNE_WITH_MPI
    MPI_Request request = MPI_REQUEST_NULL;
#endif
  };
  const Communicator& comm;
  std::vector<Slot> slots;
  std::vector<Bucket> buckets;
  std::unordered_map<const AutogradMeta*, std::size_t> slot_of;
  std::size_t next_start = 0;

  explicit Impl(const Communicator& c) : comm(c) {}

  void copy_in(Slot& s) {
    float* dst = buckets[s.bucket].data.data() + s.offset;
    const std::shared_ptr<TensorImpl>& g = s.param.impl()->meta->grad;
    if (!g) {
      std::fill(dst, dst + s.numel, 0.0f);
    } else {
      const Tensor grad = Tensor(g).contiguous().to(DType::float32);
      std::memcpy(dst, grad.data<float>(), s.numel * sizeof(float));
    }
    s.ready = true;
    ++buckets[s.bucket].ready;
  }

  // Starts, in bucket order, every bucket whose gradients are all in.
  void start_ready() {
    while (next_start < buckets.size() && buckets[next_start].ready == buckets[next_start].members) {
      Bucket& b = buckets[next_start++];
#ifdef RUNE_WITH_MPI
      if (comm.distributed())
        check(MPI_Iallreduce(MPI_IN_PLACE, b.data.data(), static_cast<int>(b.data.size()), MPI_FLOAT, MPI_SUM,
                             MPI_COMM_WORLD, &b.request),
              "MPI_Iallreduce");
#endif
      b.started = true;
    }
  }

  // Lets MPI move the started reductions along (Open MPI progresses inside its calls).
  void progress() {
#ifdef RUNE_WITH_MPI
    if (!comm.distributed()) return;
    for (std::size_t i = 0; i < next_start; ++i)
      if (buckets[i].request != MPI_REQUEST_NULL) {
        int done = 0;
        check(MPI_Test(&buckets[i].request, &done, MPI_STATUS_IGNORE), "MPI_Test");
      }
#endif
  }

  void on_ready(const AutogradMeta& leaf) {
    const auto it = slot_of.find(&leaf);
    if (it == slot_of.end() || slots[it->second].ready) return;
    copy_in(slots[it->second]);
    start_ready();
    progress();
  }
};

GradientReducer::GradientReducer(const Communicator& comm, const std::vector<Tensor>& params, std::size_t bucket_bytes)
    : impl_(std::make_unique<Impl>(comm)) {
  Impl& m = *impl_;
  const std::size_t per_bucket = std::max<std::size_t>(1, bucket_bytes / sizeof(float));
  std::size_t filled = 0;
  for (auto it = params.rbegin(); it != params.rend(); ++it) {
    const Tensor& p = *it;
    if (!p.requires_grad() || !p.impl()->meta)
      throw std::invalid_argument("GradientReducer: a parameter does not require grad");
    if (p.dtype() != DType::float32) throw std::invalid_argument("GradientReducer: parameters must be float32");
    if (m.buckets.empty() || (filled >= per_bucket && m.buckets.back().members > 0)) {
      m.buckets.emplace_back();
      filled = 0;
    }
    Impl::Slot s;
    s.param = p;
    s.bucket = m.buckets.size() - 1;
    s.offset = filled;
    s.numel = static_cast<std::size_t>(p.numel());
    filled += s.numel;
    ++m.buckets.back().members;
    if (!m.slot_of.emplace(p.impl()->meta.get(), m.slots.size()).second)
      throw std::invalid_argument("GradientReducer: a parameter is listed twice");
    m.slots.push_back(std::move(s));
  }
  for (Impl::Slot& s : m.slots) m.buckets[s.bucket].data.resize(s.offset + s.numel);
}

GradientReducer::~GradientReducer() = default;

std::size_t GradientReducer::buckets() const { return impl_->buckets.size(); }

void GradientReducer::backward(const Tensor& loss) {
  Impl& m = *impl_;
  const double t0 = now_s();
  for (Impl::Slot& s : m.slots) s.ready = false;
  for (Impl::Bucket& b : m.buckets) {
    b.ready = 0;
    b.started = false;
  }
  m.next_start = 0;
  if (loss.defined()) {
    const GradReadyHook hook([&m](const AutogradMeta& leaf) { m.on_ready(leaf); });
    loss.backward();
  }
  // what backward did not reach (a parameter unused by this batch) contributes zeros
  for (Impl::Slot& s : m.slots)
    if (!s.ready) m.copy_in(s);
  m.start_ready();
  const double t1 = now_s();
#ifdef RUNE_WITH_MPI
  if (m.comm.distributed())
    for (Impl::Bucket& b : m.buckets) check(MPI_Wait(&b.request, MPI_STATUS_IGNORE), "MPI_Wait");
#endif
  const double t2 = now_s();
  NoGradGuard no_grad;
  for (Impl::Slot& s : m.slots) {
    const float* src = m.buckets[s.bucket].data.data() + s.offset;
    std::shared_ptr<TensorImpl>& g = s.param.impl()->meta->grad;
    Tensor grad = g ? Tensor(g) : Tensor();
    if (!grad.defined() || !grad.is_contiguous() || grad.dtype() != DType::float32) {
      grad = zeros(s.param.shape(), DType::float32);
      g = grad.impl_ptr();
    }
    std::memcpy(grad.data<float>(), src, s.numel * sizeof(float));
  }
  wait_s_ = t2 - t1;
  backward_end_ = t1;
  reduced_ = t2;
  backward_s_ = now_s() - t0;
}

}  // namespace rune::train
