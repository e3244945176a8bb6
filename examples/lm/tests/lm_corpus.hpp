// A small made-up corpus for the language model's tests: sentences from a tiny grammar, some with
// a non-ASCII character, written as the three text files of data.source = "text".
#pragma once

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "autograd/random.hpp"

namespace rune::examples {

inline std::vector<std::string> lm_sentences(std::size_t n, std::uint64_t seed) {
  const std::vector<std::string> who{"the cat", "a dog", "the old man", "my café owner", "the children"},
      did{"sat on", "looked at", "ran past", "sang to", "waited for"},
      what{"the mat", "a tree", "the river", "the naïve bird", "our house"};
  Generator g(seed);
  std::vector<std::string> out;
  for (std::size_t i = 0; i < n; ++i)
    out.push_back(who[g.below(who.size())] + " " + did[g.below(did.size())] + " " + what[g.below(what.size())] + ".");
  return out;
}

// train.txt, val.txt and test.txt in dir (with a blank line in train.txt, which is skipped).
inline void write_lm_corpus(const std::filesystem::path& dir, std::size_t train_lines = 400) {
  const auto write = [&](const char* name, const std::vector<std::string>& lines) {
    std::ofstream f(dir / name);
    for (std::size_t i = 0; i < lines.size(); ++i) f << lines[i] << (i == 3 ? "\n\n" : "\n");
  };
  write("train.txt", lm_sentences(train_lines, 1));
  write("val.txt", lm_sentences(40, 2));
  write("test.txt", lm_sentences(40, 3));
}

// A config of a tiny model on that corpus, with more [data] and [model] lines.
inline std::string tiny_lm_config(const std::filesystem::path& dir, const std::string& extra_data = "",
                                  const std::string& extra_model = "", int context = 32, int nhead = 4) {
  const std::string d = dir.string();
  return "seed = 1\n[task]\nname = \"lm\"\n[data]\nsource = \"text\"\ntrain_file = \"" + d +
         "/train.txt\"\nval_file = \"" + d + "/val.txt\"\ntest_file = \"" + d +
         "/test.txt\"\ncontext = " + std::to_string(context) + "\nbatch_size = 16\n" + extra_data +
         "\n[model]\nd_model = 32\nnhead = " + std::to_string(nhead) + "\nnum_layers = 2\ndropout = 0.0\n" +
         extra_model + "\n";
}

}  // namespace rune::examples
