// xoshiro256** (Blackman and Vigna), seeded through splitmix64 as its authors recommend.
#include "autograd/random.hpp"

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

void bernoulli_keep(bool* keep, std::int64_t n, double p, Generator& gen) {
  const std::uint64_t key = gen.next_u64();
  // keep when u >= p, i.e. when the top 53 bits of the hash reach p * 2^53
  const auto threshold = static_cast<std::uint64_t>(std::ceil(p * 0x1.0p53));
#pragma omp parallel for if (n > 65536)
  for (std::int64_t i = 0; i < n; ++i) {
    std::uint64_t z = key + static_cast<std::uint64_t>(i) * 0x9E3779B97F4A7C15ULL;  // splitmix64
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    keep[i] = (z >> 11) >= threshold;
  }
}

Generator& default_generator() {
  static Generator gen(0);
  return gen;
}

void manual_seed(std::uint64_t seed) { default_generator().manual_seed(seed); }

}  // namespace rune
