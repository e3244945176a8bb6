// Debian's ONNX library (libonnx 1.12 on protobuf 3.21) behind the export: a model (onnx/model.hpp)
// into a ModelProto, checked and serialised, and a serialised model back.
//
// The library lives in a module of its own, librune_onnx_protobuf.so (onnx/protobuf_module.cpp,
// the one target that links libonnx), loaded the first time it is needed with RTLD_LOCAL |
// RTLD_DEEPBIND: its protobuf then binds only to itself, and never to the protobuf 3.14 that
// Debian's libsentencepiece (text/subword.cpp) exports into the process, nor the other way round.
// The module is found at $RUNE_ONNX_MODULE, else beside the running executable, else where the
// build put it.
#pragma once

#include <string>

#include "onnx/model.hpp"

namespace rune::onnx_export {

// The ONNX checker's full check (check_model, then strict shape inference with type checks, as
// onnx.checker.check_model(model, full_check=True)), then the model serialised. std::runtime_error
// with the checker's complaint ("the ONNX checker refuses the model: ...") or a module that cannot
// be loaded.
std::string serialize(const Model& model);

// A serialised model back as data (tensor values in `raw` whatever field held them);
// std::runtime_error naming `what` when the bytes are no ModelProto.
Model parse(const std::string& bytes, const std::string& what);

}  // namespace rune::onnx_export

// The module's entry points: 0 on success, else 1 with *error set. Plain C names, for dlsym.
extern "C" {
using RuneOnnxSerialize = int (*)(const rune::onnx_export::Model* model, std::string* bytes, std::string* error);
using RuneOnnxParse = int (*)(const std::string* bytes, rune::onnx_export::Model* model, std::string* error);
}
