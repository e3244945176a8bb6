// librune_onnx_protobuf.so: the only code that speaks ONNX's protobuf (onnx/protobuf.hpp says
// why it is a module of its own). Built with hidden visibility; it exports its two entry points.
#include <onnx/checker.h>
#include <onnx/onnx_pb.h>
#include <onnx/shape_inference/implementation.h>

#include <cstring>
#include <exception>
#include <string>
#include <type_traits>

#include "onnx/protobuf.hpp"

namespace {

using namespace rune::onnx_export;

void set_value_info(onnx::ValueInfoProto& v, const ValueInfo& info) {
  v.set_name(info.name);
  onnx::TypeProto_Tensor* t = v.mutable_type()->mutable_tensor_type();
  t->set_elem_type(info.type);
  onnx::TensorShapeProto* shape = t->mutable_shape();
  for (const Dim& d : info.dims) {
    onnx::TensorShapeProto_Dimension* dim = shape->add_dim();
    if (const auto* size = std::get_if<std::int64_t>(&d))
      dim->set_dim_value(*size);
    else
      dim->set_dim_param(std::get<std::string>(d));
  }
}

onnx::ModelProto to_proto(const Model& m) {
  onnx::ModelProto model;
  model.set_ir_version(onnx::IR_VERSION);
  model.set_producer_name(m.producer_name);
  model.set_producer_version(m.producer_version);
  onnx::OperatorSetIdProto* opset = model.add_opset_import();
  opset->set_domain("");
  opset->set_version(m.opset);
  for (const auto& [key, value] : m.metadata) {
    onnx::StringStringEntryProto* p = model.add_metadata_props();
    p->set_key(key);
    p->set_value(value);
  }
  onnx::GraphProto* g = model.mutable_graph();
  g->set_name(m.graph.name);
  for (const ValueInfo& v : m.graph.inputs) set_value_info(*g->add_input(), v);
  for (const ValueInfo& v : m.graph.outputs) set_value_info(*g->add_output(), v);
  for (const Initializer& i : m.graph.initializers) {
    onnx::TensorProto* t = g->add_initializer();
    t->set_name(i.name);
    t->set_data_type(i.type);
    for (std::int64_t d : i.dims) t->add_dims(d);
    t->set_raw_data(i.raw);
  }
  for (const Node& n : m.graph.nodes) {
    onnx::NodeProto* p = g->add_node();
    p->set_op_type(n.op_type);
    p->set_name(n.name);
    for (const std::string& in : n.inputs) p->add_input(in);
    for (const std::string& out : n.outputs) p->add_output(out);
    for (const Attribute& a : n.attributes) {
      onnx::AttributeProto* attr = p->add_attribute();
      attr->set_name(a.name);
      if (const auto* i = std::get_if<std::int64_t>(&a.value)) {
        attr->set_type(onnx::AttributeProto::INT);
        attr->set_i(*i);
      } else if (const auto* f = std::get_if<float>(&a.value)) {
        attr->set_type(onnx::AttributeProto::FLOAT);
        attr->set_f(*f);
      } else {
        attr->set_type(onnx::AttributeProto::INTS);
        for (std::int64_t v : std::get<std::vector<std::int64_t>>(a.value)) attr->add_ints(v);
      }
    }
  }
  return model;
}

ValueInfo from_proto(const onnx::ValueInfoProto& v) {
  ValueInfo info{v.name(), v.type().tensor_type().elem_type(), {}};
  for (const auto& d : v.type().tensor_type().shape().dim())
    info.dims.push_back(d.has_dim_param() ? Dim{d.dim_param()} : Dim{d.dim_value()});
  return info;
}

// A tensor's values as raw bytes, from raw_data or the typed field that held them.
std::string raw_values(const onnx::TensorProto& t) {
  if (t.has_raw_data()) return t.raw_data();
  if (t.float_data_size())
    return std::string(reinterpret_cast<const char*>(t.float_data().data()), t.float_data_size() * sizeof(float));
  if (t.int64_data_size())
    return std::string(reinterpret_cast<const char*>(t.int64_data().data()),
                       t.int64_data_size() * sizeof(std::int64_t));
  return "";
}

Model from_proto(const onnx::ModelProto& model) {
  Model m;
  for (const auto& o : model.opset_import())
    if (o.domain().empty()) m.opset = o.version();
  m.producer_name = model.producer_name();
  m.producer_version = model.producer_version();
  for (const auto& p : model.metadata_props()) m.metadata[p.key()] = p.value();
  const onnx::GraphProto& g = model.graph();
  m.graph.name = g.name();
  for (const auto& v : g.input()) m.graph.inputs.push_back(from_proto(v));
  for (const auto& v : g.output()) m.graph.outputs.push_back(from_proto(v));
  for (const auto& t : g.initializer())
    m.graph.initializers.push_back(
        {t.name(), t.data_type(), std::vector<std::int64_t>(t.dims().begin(), t.dims().end()), raw_values(t)});
  for (const auto& n : g.node()) {
    Node node{n.op_type(), n.name(), {n.input().begin(), n.input().end()}, {n.output().begin(), n.output().end()}, {}};
    if (!n.domain().empty()) node.op_type = n.domain() + "." + n.op_type();
    for (const auto& a : n.attribute()) {
      if (a.type() == onnx::AttributeProto::INT)
        node.attributes.push_back({a.name(), a.i()});
      else if (a.type() == onnx::AttributeProto::FLOAT)
        node.attributes.push_back({a.name(), a.f()});
      else
        node.attributes.push_back({a.name(), std::vector<std::int64_t>(a.ints().begin(), a.ints().end())});
    }
    m.graph.nodes.push_back(std::move(node));
  }
  return m;
}

}  // namespace

extern "C" {

__attribute__((visibility("default"))) int rune_onnx_serialize(const Model* m, std::string* bytes, std::string* error) {
  try {
    const onnx::ModelProto model = to_proto(*m);
    try {
      onnx::checker::check_model(model);
      // full_check: strict shape inference with type checks, on a copy (it adds value_info)
      onnx::ModelProto copy = model;
      onnx::shape_inference::InferShapes(copy, onnx::OpSchemaRegistry::Instance(),
                                         onnx::ShapeInferenceOptions(/*check_type=*/true, /*strict_mode=*/1));
    } catch (const std::exception& e) {
      *error = std::string("the ONNX checker refuses the model: ") + e.what();
      return 1;
    }
    if (!model.SerializeToString(bytes)) {
      *error = "the model does not serialise (over protobuf's 2 GB?)";
      return 1;
    }
    return 0;
  } catch (const std::exception& e) {
    *error = e.what();
    return 1;
  }
}

__attribute__((visibility("default"))) int rune_onnx_parse(const std::string* bytes, Model* m, std::string* error) {
  try {
    onnx::ModelProto model;
    if (!model.ParseFromString(*bytes)) {
      *error = "not an ONNX model (the bytes are no ModelProto)";
      return 1;
    }
    *m = from_proto(model);
    return 0;
  } catch (const std::exception& e) {
    *error = e.what();
    return 1;
  }
}

}  // extern "C"

static_assert(std::is_same_v<decltype(&rune_onnx_serialize), RuneOnnxSerialize>, "onnx/protobuf.hpp's signature");
static_assert(std::is_same_v<decltype(&rune_onnx_parse), RuneOnnxParse>, "onnx/protobuf.hpp's signature");
