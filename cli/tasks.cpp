// rune tasks: the registered tasks, what each is, and the capabilities it offers.
#include <cstdio>

#include "cli/command.hpp"
#include "train/format.hpp"

namespace rune::cli {

Command add_tasks(CLI::App& app) {
  CLI::App* c = app.add_subcommand("tasks", "List the tasks a config can name (task.name) and what each can do");
  return {c, [] {
            for (const train::TaskInfo& t : train::registered_tasks()) {
              std::vector<std::string> can{"train"};
              can.insert(can.end(), t.capabilities.begin(), t.capabilities.end());
              std::printf("%-12s %s\n%-12s can: %s\n", t.name.c_str(), t.description.c_str(), "",
                          train::join(can, ", ").c_str());
            }
            return 0;
          }};
}

}  // namespace rune::cli
