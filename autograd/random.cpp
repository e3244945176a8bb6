// xoshiro256** (Blackman and Vigna), seeded through splitmix64 as its authors recommend.
#include "autograd/random.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <stdexcept>

namespace rune {
namespace {

std::uint64_t splitmix64(std::uint64_t& x) {
  std::uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

}  // namespace

void Generator::manual_seed(std::uint64_t seed) {
  std::uint64_t x = seed;
  for (auto& s : s_) s = splitmix64(x);
  has_spare_ = false;
  spare_ = 0.0;
}

std::uint64_t Generator::next_u64() {
  const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const std::uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

double Generator::uniform() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }

double Generator::normal() {
  if (has_spare_) {
    has_spare_ = false;
    return spare_;
  }
  // u1 in (0, 1] so that log(u1) is finite.
  const double u1 = 1.0 - uniform();
  const double u2 = uniform();
  const double r = std::sqrt(-2.0 * std::log(u1));
  const double theta = 2.0 * M_PI * u2;
  spare_ = r * std::sin(theta);
  has_spare_ = true;
  return r * std::cos(theta);
}

std::uint64_t Generator::below(std::uint64_t n) {
  if (n == 0) throw std::invalid_argument("Generator::below: n must be positive");
  // Lemire's rejection: unbiased without a division in the common case.
  const std::uint64_t threshold = (0 - n) % n;
  for (;;) {
    const std::uint64_t r = next_u64();
    if (r >= threshold) return r % n;
  }
}

std::string Generator::state() const {
  std::ostringstream os;
  os.precision(17);
  os << "xoshiro256** " << s_[0] << ' ' << s_[1] << ' ' << s_[2] << ' ' << s_[3] << ' ' << (has_spare_ ? 1 : 0) << ' '
     << std::hexfloat << spare_;
  return os.str();
}

void Generator::set_state(const std::string& state) {
  // Parse into temporaries: a refused state leaves this generator untouched.
  std::istringstream is(state);
  std::string tag, spare_text, rest;
  std::uint64_t s[4] = {0, 0, 0, 0};
  int spare_flag = -1;
  is >> tag >> s[0] >> s[1] >> s[2] >> s[3] >> spare_flag >> spare_text;
  const bool parsed = !is.fail() && tag == "xoshiro256**" && (spare_flag == 0 || spare_flag == 1) && !(is >> rest);
  char* end = nullptr;
  const double spare = parsed ? std::strtod(spare_text.c_str(), &end) : 0.0;
  if (!parsed || end == spare_text.c_str() || *end != '\0')
    throw std::invalid_argument("Generator::set_state: not a generator state: '" + state + "'");
  if ((s[0] | s[1] | s[2] | s[3]) == 0)
    throw std::invalid_argument("Generator::set_state: the all-zero state is not a valid xoshiro256** state");
  for (int i = 0; i < 4; ++i) s_[i] = s[i];
  has_spare_ = spare_flag == 1;
  spare_ = spare;
}

namespace {

// lowbias32 (from Wellons's hash prospector): a 32-bit integer hash with a low avalanche bias,
// two multiplies and three shifts, which compilers vectorise 8 lanes at a time under AVX2.
inline std::uint32_t mix32(std::uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352dU;
  x ^= x >> 15;
  x *= 0x846ca68bU;
  x ^= x >> 16;
  return x;
}

}  // namespace

void bernoulli_keep(bool* keep, std::int64_t n, double p, Generator& gen) {
  const std::uint64_t key = gen.next_u64();  // drawn even when p makes it moot: the stream stays in step
  // keep when u >= p, with u = hash / 2^32: when the hash reaches ceil(p * 2^32)
  const double scaled = std::ceil(p * 0x1.0p32);
  if (scaled <= 0.0 || scaled >= 0x1.0p32) {
    std::fill(keep, keep + n, scaled <= 0.0);
    return;
  }
  const auto threshold = static_cast<std::uint32_t>(scaled);
  constexpr std::int64_t kBlock = 1 << 16;  // the unit of work, so that the hash runs on 32-bit lanes
  const std::int64_t blocks = (n + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (n > 65536)
  for (std::int64_t blk = 0; blk < blocks; ++blk) {
    const std::uint64_t first = static_cast<std::uint64_t>(blk) * kBlock;
    // two rounds, each keyed by half of the key; the block's position enters the second key
    const auto k0 = static_cast<std::uint32_t>(key);
    const auto k1 = static_cast<std::uint32_t>(key >> 32) + mix32(static_cast<std::uint32_t>(first >> 16) ^ k0);
    const auto len = static_cast<std::uint32_t>(std::min<std::int64_t>(kBlock, n - blk * kBlock));
    bool* out = keep + first;
    for (std::uint32_t j = 0; j < len; ++j) out[j] = mix32(mix32(j ^ k0) + k1) >= threshold;
  }
}

Generator& default_generator() {
  static Generator gen(0);
  return gen;
}

void manual_seed(std::uint64_t seed) { default_generator().manual_seed(seed); }

}  // namespace rune
