// An ONNX model as plain data: what onnx/graph.hpp builds, and what the ONNX library turns into a
// checked ModelProto (onnx/protobuf.hpp). Only the names of ONNX's own fields and values are used
// (ModelProto, GraphProto, NodeProto, TensorProto, AttributeProto), so that the conversion is one
// field per field.
//
// Why plain data: Debian's libsentencepiece exports the protobuf 3.14 it was built with, and
// libonnx needs the system's protobuf 3.21; one process that loads both breaks whichever binds to
// the other's symbols. So nothing of Runestone links libonnx: the conversion lives in a module
// loaded only to check and serialise a model, with its own protobuf (onnx/protobuf.hpp).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <variant>
#include <vector>

namespace rune::onnx_export {

// TensorProto.DataType's values, for the types the graphs use.
enum ElementType : int { kFloat = 1, kInt64 = 7, kBool = 9 };

// A dimension of a graph input or output: a fixed size, or a named dynamic one ("batch").
using Dim = std::variant<std::int64_t, std::string>;

// An attribute of a node: an int, a float, or a list of ints.
struct Attribute {
  std::string name;
  std::variant<std::int64_t, float, std::vector<std::int64_t>> value;
};

struct Node {  // NodeProto
  std::string op_type, name;
  std::vector<std::string> inputs, outputs;
  std::vector<Attribute> attributes;
};

struct ValueInfo {  // ValueInfoProto of a tensor
  std::string name;
  int type = kFloat;
  std::vector<Dim> dims;
};

struct Initializer {  // TensorProto
  std::string name;
  int type = kFloat;
  std::vector<std::int64_t> dims;
  std::string raw;  // the values, little-endian, row-major (raw_data)
};

struct Graph {  // GraphProto
  std::string name;
  std::vector<ValueInfo> inputs, outputs;
  std::vector<Initializer> initializers;
  std::vector<Node> nodes;
};

struct Model {  // ModelProto
  Graph graph;
  std::int64_t opset = 0;  // of the default domain
  std::string producer_name, producer_version;
  std::map<std::string, std::string> metadata;  // metadata_props
};

}  // namespace rune::onnx_export
