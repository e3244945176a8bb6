// The `rune` command: main parses the command line (CLI11, Debian's libcli11-dev) into one of the
// subcommands of cli/*.cpp and runs it. An exception becomes "rune: <message>" and exit code 1.
#include <cstdio>
#include <exception>

#include "cli/command.hpp"
#include "train/distributed.hpp"

int main(int argc, char** argv) {
  CLI::App app{"rune: train and inspect Transformer models (Runestone)"};
  app.require_subcommand(1);
  app.set_version_flag("--version", [] {
    return "rune " RUNE_VERSION " (Runestone); data-parallel training: " +
           (rune::train::Communicator::built_with_mpi() ? rune::train::Communicator::library_version()
                                                        : std::string("none, built without MPI (RUNE_MPI=OFF)"));
  });
  using namespace rune::cli;
  const std::vector<Command> commands{add_train(app),     add_eval(app),  add_info(app),     add_translate(app),
                                      add_attention(app), add_heads(app), add_align(app),    add_tasks(app),
                                      add_config(app),    add_score(app), add_generate(app), add_sweep(app),
                                      add_report(app),    add_export(app)};
  CLI11_PARSE(app, argc, argv);
  try {
    for (const Command& c : commands)
      if (c.app->parsed()) return c.run();
  } catch (const std::exception& ex) {
    // under mpirun, one rank's error ends every rank, rather than leave them waiting for it
    const rune::train::Communicator& world = rune::train::Communicator::world();
    if (world.distributed()) {
      std::fprintf(stderr, "rune (rank %d of %d): %s\n", world.rank(), world.size(), ex.what());
      std::fflush(stderr);
      world.abort(1);
    }
    std::fprintf(stderr, "rune: %s\n", ex.what());
    return 1;
  }
  return 1;
}
