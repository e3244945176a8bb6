// The ViT task under mpirun (tests/mpi.hpp): 2 and 4 ranks train what one process trains.
#include "examples/vit/tests/tiny_vit.hpp"
#include "tests/mpi.hpp"

namespace rune::examples {
namespace {

TEST_F(Mpi, VitOnTwoAndFourRanksTrainsWhatOneProcessTrains) {
  const std::filesystem::path data = idx_folder("mpi");
  // 400 training images in batches of 40: 10 steps, each of 20 or 10 images a rank
  std::string config = tiny_config(data, "[train]\nepochs = 1\nlr = 1e-3\nwarmup_steps = 2\n");
  config.replace(config.find("batch_size = 32"), 15, "batch_size = 40");
  expect_ranks_equal_one_process("vit", config, 1e-3, scratch_dir("mpi_vit"));
}

}  // namespace
}  // namespace rune::examples
