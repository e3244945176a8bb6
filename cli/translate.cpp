// rune translate CKPT [SENTENCE ...] [--scores]: any task that can translate. Stdout holds the
// translations (and scores) only, so scripts can parse it; what the task notes about them (an
// input cut to the model's length, unknown words) goes to stderr.
#include <cstdio>
#include <iostream>
#include <set>

#include "cli/command.hpp"

namespace rune::cli {

namespace {

int translate(const std::string& checkpoint, const std::vector<std::string>& sentences, bool scores) {
  const std::unique_ptr<LoadedTask> loaded = load_task(checkpoint, {}, /*load_data=*/false);
  train::Translator& translator = train::capability<train::Translator>(*loaded->task, "checkpoint " + checkpoint);
  std::vector<std::string> inputs = sentences;
  if (inputs.empty())
    for (std::string line; std::getline(std::cin, line);) inputs.push_back(line);
  std::vector<std::string> notes;
  const std::vector<std::string> out = translator.translate(inputs, &notes);
  std::vector<double> logp;
  if (scores) {
    std::vector<std::pair<std::string, std::string>> pairs;
    for (std::size_t i = 0; i < out.size(); ++i) pairs.emplace_back(inputs[i], out[i]);
    logp = translator.log_probability(pairs, &notes);  // notes on the sources again, said once below
  }
  std::set<std::string> said;
  for (const std::string& note : notes)
    if (said.insert(note).second) std::fprintf(stderr, "rune translate: %s\n", note.c_str());
  for (std::size_t i = 0; i < out.size(); ++i) {
    std::printf(sentences.empty() ? "%s%s" : "%s -> %s", sentences.empty() ? "" : inputs[i].c_str(), out[i].c_str());
    if (scores) std::printf("\t%.9g", logp[i]);
    std::printf("\n");
  }
  return 0;
}

}  // namespace

Command add_translate(CLI::App& app) {
  auto checkpoint = std::make_shared<std::string>();
  auto sentences = std::make_shared<std::vector<std::string>>();
  auto scores = std::make_shared<bool>(false);
  CLI::App* c = app.add_subcommand(
      "translate", "Translate sentences with a checkpoint of a task that translates (stdin when none given)");
  add_checkpoint_argument(*c, *checkpoint);
  c->add_option("sentences", *sentences, "Sentences to translate; without them, one per line from stdin");
  c->add_flag("--scores", *scores,
              "Follow each translation by a tab and its log-probability under the model: the sum of the natural-log "
              "probabilities of its tokens, <eos> included");
  return {c, [=] { return translate(*checkpoint, *sentences, *scores); }};
}

}  // namespace rune::cli
