// What the ONNX end-to-end tests share (examples/<task>/tests/*_onnx_e2e.cpp): a run of
// tests/onnx/run_check.sh, which runs tests/onnx/check.mjs in Node.js with ONNX Runtime
// (onnxruntime-node from npm, installed once into the build folder: RUNE_ONNX_NODE_DIR).
#pragma once

#include <cstdio>
#include <string>

#include "tests/helpers.hpp"

namespace rune {

#if defined(RUNE_BINARY) && defined(RUNE_ONNX_NODE_DIR)
// check.mjs with `args` (shell-quoted by the caller), run in `dir`: its exit status and output
// (stdout and stderr). Status 3 says node or npm is missing, and the output what installs them.
inline RunResult run_onnx_check(const std::string& args, const std::string& dir) {
  const std::string cmd = "cd '" + dir + "' && bash '" + std::string(RUNE_SOURCE_DIR) + "/tests/onnx/run_check.sh' '" +
                          std::string(RUNE_ONNX_NODE_DIR) + "' " + args + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  while (std::size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  const int status = ::pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}
#endif

}  // namespace rune
