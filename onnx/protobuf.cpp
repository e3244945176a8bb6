#include "onnx/protobuf.hpp"

#include <dlfcn.h>
#include <unistd.h>

#include <filesystem>
#include <mutex>
#include <stdexcept>

namespace rune::onnx_export {

namespace {

struct Module {
  RuneOnnxSerialize serialize = nullptr;
  RuneOnnxParse parse = nullptr;
};

// Where the module is: $RUNE_ONNX_MODULE, else beside the running executable, else the build's.
std::vector<std::string> module_paths() {
  std::vector<std::string> paths;
  if (const char* env = std::getenv("RUNE_ONNX_MODULE")) paths.push_back(env);
  std::error_code ec;
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) paths.push_back((exe.parent_path() / "librune_onnx_protobuf.so").string());
  paths.push_back(RUNE_ONNX_MODULE_PATH);
  return paths;
}

const Module& module() {
  static std::once_flag once;
  static Module m;
  static std::string failure;
  std::call_once(once, [] {
  // RTLD_DEEPBIND: the module's protobuf binds to itself before the process's (see the header);
  // AddressSanitizer refuses it, and a sanitized build loads the module without
#if defined(__SANITIZE_ADDRESS__)
    const int flags = RTLD_NOW | RTLD_LOCAL;
#else
    const int flags = RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND;
#endif
    std::string tried;
    for (const std::string& path : module_paths()) {
      if (!std::filesystem::exists(path)) {
        tried += (tried.empty() ? "" : ", ") + path + " (missing)";
        continue;
      }
      void* handle = ::dlopen(path.c_str(), flags);
      if (!handle) {
        tried += (tried.empty() ? "" : ", ") + path + " (" + ::dlerror() + ")";
        continue;
      }
      m.serialize = reinterpret_cast<RuneOnnxSerialize>(::dlsym(handle, "rune_onnx_serialize"));
      m.parse = reinterpret_cast<RuneOnnxParse>(::dlsym(handle, "rune_onnx_parse"));
      if (m.serialize && m.parse) return;
      tried += (tried.empty() ? "" : ", ") + path + " (lacks its entry points)";
    }
    failure = "the ONNX library module librune_onnx_protobuf.so cannot be loaded: " + tried +
              " (it is built beside rune; RUNE_ONNX_MODULE names another)";
  });
  if (!m.serialize) throw std::runtime_error(failure);
  return m;
}

}  // namespace

std::string serialize(const Model& model) {
  std::string bytes, error;
  if (module().serialize(&model, &bytes, &error) != 0) throw std::runtime_error(error);
  return bytes;
}

Model parse(const std::string& bytes, const std::string& what) {
  Model m;
  std::string error;
  if (module().parse(&bytes, &m, &error) != 0) throw std::runtime_error(what + ": " + error);
  return m;
}

}  // namespace rune::onnx_export
