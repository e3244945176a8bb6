// SHA-256 (FIPS 180-4), for checking that a file is the one that was written: a checkpoint ends
// in the digest of everything before it (train/checkpoint.hpp).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace rune::train {

class Sha256 {
 public:
  Sha256();
  Sha256& update(const void* data, std::size_t size);
  Sha256& update(const std::string& s) { return update(s.data(), s.size()); }
  // The digest of everything passed to update(); the object is spent afterwards.
  std::array<std::uint8_t, 32> digest();
  // The digest as 64 lowercase hexadecimal digits.
  std::string hex_digest();

 private:
  void block(const std::uint8_t* p);
  std::array<std::uint32_t, 8> h_;
  std::array<std::uint8_t, 64> buffer_{};
  std::size_t buffered_ = 0;
  std::uint64_t length_ = 0;  // bytes so far
};

// The hex SHA-256 of `size` bytes at `data`.
std::string sha256_hex(const void* data, std::size_t size);

}  // namespace rune::train
