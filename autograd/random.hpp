// Seeded random numbers: one engine and the distributions we draw from, written here rather than
// taken from <random>'s distributions, whose output differs between standard libraries. The same
// seed gives the same numbers on every platform, and the state can be saved and restored.
#pragma once

#include <cstdint>
#include <string>

namespace rune {

class Generator {
 public:
  explicit Generator(std::uint64_t seed = 0) { manual_seed(seed); }

  void manual_seed(std::uint64_t seed);
  std::uint64_t next_u64();              // xoshiro256** step
  double uniform();                      // [0, 1) with 53 random bits
  double normal();                       // standard normal (Box-Muller, caching the second value)
  std::uint64_t below(std::uint64_t n);  // uniform on [0, n), unbiased

  // Opaque text form of the full state, for checkpoints.
  std::string state() const;
  void set_state(const std::string& state);

 private:
  std::uint64_t s_[4] = {0, 0, 0, 0};
  bool has_spare_ = false;
  double spare_ = 0.0;
};

// Dropout's keep mask: keep[i] = (u_i >= p) for n uniforms u_i in [0, 1). One draw of `gen` picks
// a key; u_i is a 32-bit hash of the key and i (two keyed rounds of an integer hash, vectorised),
// so the mask depends on the generator's state and on i only, never on the thread count, and
// threads fill it in parallel.
void bernoulli_keep(bool* keep, std::int64_t n, double p, Generator& gen);

// The process-wide generator used when an op is given none.
Generator& default_generator();
void manual_seed(std::uint64_t seed);

}  // namespace rune
