// SHA-256 against the FIPS 180-4 examples and a known digest of a million bytes.
#include <gtest/gtest.h>

#include <string>

#include "train/sha256.hpp"

using rune::train::Sha256;
using rune::train::sha256_hex;

TEST(Sha256, MatchesTheStandardsExamples) {
  EXPECT_EQ(sha256_hex("", 0), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc", 3), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  const std::string two_blocks = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  EXPECT_EQ(sha256_hex(two_blocks.data(), two_blocks.size()),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  const std::string million(1000000, 'a');
  EXPECT_EQ(sha256_hex(million.data(), million.size()),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, PiecesInAnySizesGiveTheDigestOfTheWhole) {
  std::string text;
  for (int i = 0; i < 300; ++i) text += static_cast<char>(i * 7 + 3);
  const std::string whole = sha256_hex(text.data(), text.size());
  for (const std::size_t piece : {1u, 3u, 55u, 56u, 63u, 64u, 65u, 129u}) {
    Sha256 h;
    for (std::size_t at = 0; at < text.size(); at += piece) h.update(text.substr(at, piece));
    EXPECT_EQ(h.hex_digest(), whole) << "pieces of " << piece;
  }
}
