// The CNN task under mpirun (tests/mpi.hpp): its batch norms' running statistics, which each rank
// gathers from its own shard of the batches, are the ranks' mean when they validate and in the
// checkpoint.
#include <fstream>
#include <sstream>

#include "examples/cnn/tests/tiny_cnn.hpp"
#include "tests/mpi.hpp"

namespace rune::examples {
namespace {

// A number from eval-<split>.json: "key": value.
double json_number(const std::filesystem::path& file, const std::string& key) {
  std::ifstream in(file);
  std::stringstream text;
  text << in.rdbuf();
  const std::string s = text.str(), quoted = "\"" + key + "\":";
  const auto at = s.find(quoted);
  if (at == std::string::npos) throw std::runtime_error(file.string() + " has no " + key + ": " + s);
  return std::stod(s.substr(at + quoted.size()));
}

TEST_F(Mpi, CnnOnTwoRanksValidatesWithTheStatisticsItSaves) {
  const std::filesystem::path dir = cnn_idx_folder("mpi");
  // 400 training images in batches of 32: 12 steps an epoch, each of 16 images a rank; validation
  // (80 images) shared out between the ranks, each with the running statistics it holds
  std::ofstream(dir / "cnn.toml") << "seed = 3\n"
                                  << tiny_cnn_config(dir,
                                                     "[train]\nepochs = 2\noptimizer = \"sgd\"\nlr = 0.1\n"
                                                     "warmup_steps = 2\n[run]\ndir = \"runs\"\n");
  const RunResult r = rune_on(2, "train cnn.toml --no-progress --set run.name=ranks2", dir);
  ASSERT_EQ(r.status, 0) << r.output;
  const auto logged = last_validation((dir / "runs/ranks2/metrics.jsonl").string());
  ASSERT_TRUE(logged.count("val_loss")) << r.output;
  // one process evaluating the saved checkpoint on the whole split finds what the ranks logged:
  // rank 1 validated its half with the statistics rank 0 saved
  const RunResult e = rune_on(0, "eval runs/ranks2/checkpoints/last.h5 --split val", dir);
  ASSERT_EQ(e.status, 0) << e.output;
  const double loss = json_number(dir / "runs/ranks2/eval-val.json", "loss");
  EXPECT_NEAR(loss, logged.at("val_loss"), 1e-5 * std::max(1.0, loss));
  EXPECT_NEAR(json_number(dir / "runs/ranks2/eval-val.json", "accuracy"), logged.at("val_accuracy"), 1e-12);
  // and the statistics moved from their initial zeros and ones
  const train::Checkpoint c = train::read_checkpoint((dir / "runs/ranks2/checkpoints/last.h5").string());
  bool moved = false;
  for (const auto& [name, t] : c.params)
    if (name.find("running_mean") != std::string::npos)
      for (const double v : to_dtype(t, DType::float64).to_vector<double>()) moved = moved || v != 0.0;
  EXPECT_TRUE(moved) << "no running_mean in the checkpoint moved";
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace rune::examples
