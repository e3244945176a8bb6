#!/usr/bin/env bash
# Installs the Debian packages Runestone needs, only those missing (so a second run is instant).
#   scripts/install-deps.sh          build and test dependencies
#   scripts/install-deps.sh --bench  also PyTorch, which the benchmarks compare against
set -euo pipefail

packages=(
  g++ make cmake pkg-config git python3   # python3: tests/check_layers.py
  clang-format                     # tests/check_format.sh (the layout of the sources)
  libgtest-dev googletest          # GoogleTest
  xtensor-dev xtl-dev libxsimd-dev libxtensor-blas-dev
  libopenblas-openmp-dev           # the OpenMP build of OpenBLAS (see CMakeLists.txt)
  libhdf5-dev                      # checkpoints
  libtomlplusplus-dev              # configs (TOML)
  libcli11-dev                     # the rune command line
  nlohmann-json3-dev               # JSON (the metrics log, reports)
  libcairo2-dev                    # PNG plots, and reading PNG images
  zlib1g-dev                       # gzipped IDX image files
  libsentencepiece-dev             # subword tokens (text/subword.cpp)
  libsword-dev                     # the Bible corpus (text/bible.cpp) read through libsword
  libopenmpi-dev openmpi-bin       # data-parallel training (train/distributed.cpp, mpirun)
  procps                           # pgrep (tests/test_mpi.cpp kills a rank)
  sword-text-web sword-text-sparv  # its two modules: the World English Bible, the Reina-Valera 1909
  dataset-fashion-mnist            # the ViT example's data set (/usr/share/datasets/fashion-mnist)
  chromium                         # headless browser: the test that loads rune report's page (tests/test_report_e2e.cpp)
  libonnx-dev libprotobuf-dev      # ONNX export (onnx/, rune export): the ONNX library and checker, on protobuf
)
# Node.js and npm run the exported models in ONNX Runtime (tests/onnx/, onnxruntime-node from npm):
# Debian's, only when no node or npm is on the PATH already (a newer Node.js may be installed)
command -v node >/dev/null || packages+=(nodejs)
command -v npm >/dev/null || packages+=(npm)
if [[ "${1:-}" == "--bench" ]]; then
  packages+=(python3 python3-torch python3-numpy python3-h5py python3-num2words python3-nltk python3-sentencepiece)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

echo "Installing Debian packages: ${missing[*]}"
sudo=""
if [[ "$(id -u)" -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "install-deps: need root or sudo to apt-get install ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
