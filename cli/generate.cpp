// rune generate CKPT --prompt TEXT: any task that generates text continues a prompt, token by token
// with the KV cache, and streams the text to stdout as it comes (the prompt first, then its
// continuation, then a newline). Without --prompt, each line of stdin is a prompt. What the task
// notes (a prompt cut to the context, unseen characters) and --tokens-per-s go to stderr.
#include <cstdio>
#include <iostream>
#include <set>

#include "cli/command.hpp"

namespace rune::cli {

namespace {

struct GenerateFlags {
  std::string checkpoint;
  std::vector<std::string> prompts;
  train::GenerationOptions options;
  bool tokens_per_s = false;
};

int generate(const GenerateFlags& f) {
  const std::unique_ptr<LoadedTask> loaded = load_task(f.checkpoint, {}, /*load_data=*/false);
  train::TextGenerator& generator =
      train::capability<train::TextGenerator>(*loaded->task, "checkpoint " + f.checkpoint);
  std::vector<std::string> prompts = f.prompts;
  const bool from_stdin = prompts.empty();
  std::set<std::string> said;
  const auto run = [&](const std::string& prompt, std::size_t number) {
    std::vector<std::string> notes;
    std::fputs(prompt.c_str(), stdout);
    std::fflush(stdout);
    train::GenerationOptions o = f.options;
    o.seed = f.options.seed + number;  // each prompt its own draws, the same on every run
    const train::GenerationResult r = generator.generate(
        prompt, o,
        [](const std::string& piece) {
          std::fputs(piece.c_str(), stdout);
          std::fflush(stdout);
        },
        &notes);
    std::fputs("\n", stdout);
    std::fflush(stdout);
    for (const std::string& note : notes)
      if (said.insert(note).second) std::fprintf(stderr, "rune generate: %s\n", note.c_str());
    if (f.tokens_per_s)
      std::fprintf(
          stderr, "rune generate: %lld new tokens in %.3f s: %.1f tokens/s (the prompt's %lld tokens read in %.3f s)\n",
          static_cast<long long>(r.new_tokens), r.decode_seconds,
          r.decode_seconds > 0 ? static_cast<double>(r.new_tokens) / r.decode_seconds : 0.0,
          static_cast<long long>(r.prompt_tokens), r.prompt_seconds);
  };
  if (!from_stdin) {
    for (std::size_t i = 0; i < prompts.size(); ++i) run(prompts[i], i);
    return 0;
  }
  std::size_t number = 0;
  for (std::string line; std::getline(std::cin, line);) run(line, number++);
  return 0;
}

}  // namespace

Command add_generate(CLI::App& app) {
  auto f = std::make_shared<GenerateFlags>();
  CLI::App* c = app.add_subcommand(
      "generate", "Continue text with a checkpoint of a task that generates text (prompts from stdin when none given)");
  add_checkpoint_argument(*c, f->checkpoint);
  c->add_option("--prompt,-p", f->prompts,
                "A text to continue (repeat for several); without it, one per line from stdin");
  c->add_option("--max-new-tokens,-n", f->options.max_new_tokens, "Tokens to generate after each prompt")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{1} << 30))
      ->capture_default_str();
  c->add_option("--temperature,-t", f->options.sampling.temperature,
                "Divide the logits by this before sampling; 0: greedy (always the most probable token)")
      ->check(CLI::Range(0.0, 1e6))
      ->capture_default_str();
  c->add_option("--top-k", f->options.sampling.top_k, "Sample among the k most probable tokens only; 0: all")
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{1} << 30))
      ->capture_default_str();
  c->add_option("--top-p", f->options.sampling.top_p,
                "Sample among the fewest most probable tokens whose probability reaches p (nucleus); 1: all")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  c->add_option("--seed", f->options.seed,
                "The seed of the draws: the same seed, prompt and options give the same text (prompt i uses seed + i)")
      ->capture_default_str();
  c->add_flag("--tokens-per-s", f->tokens_per_s, "Report the decoding speed of each prompt on stderr");
  return {c, [f] { return generate(*f); }};
}

}  // namespace rune::cli
