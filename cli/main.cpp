// The `rune` command: main parses the command line (CLI11, Debian's libcli11-dev) into one of the
// subcommands of cli/*.cpp and runs it. An exception becomes "rune: <message>" and exit code 1.
#include <cstdio>
#include <exception>

#include "cli/command.hpp"

int main(int argc, char** argv) {
  CLI::App app{"rune: train and inspect Transformer models (Runestone)"};
  app.require_subcommand(1);
  using namespace rune::cli;
  const std::vector<Command> commands{add_train(app),     add_eval(app),  add_info(app),  add_translate(app),
                                      add_attention(app), add_heads(app), add_align(app), add_tasks(app),
                                      add_config(app),    add_score(app)};
  CLI11_PARSE(app, argc, argv);
  try {
    for (const Command& c : commands)
      if (c.app->parsed()) return c.run();
  } catch (const std::exception& ex) {
    std::fprintf(stderr, "rune: %s\n", ex.what());
    return 1;
  }
  return 1;
}
