// ONNX export (include/contrastive/onnx_export.h). The graph is written with the ONNX project's protobuf classes
// (onnx::ModelProto and friends from libonnx-dev), one emitter per network piece: the CIFAR ResNet (BasicBlock
// and Bottleneck) and the AMDIM encoder. Weights are float32 initializers; the batch dimension is symbolic.
#include "contrastive/onnx_export.h"

#include <torch/torch.h>
#include <torch/version.h>

#include <nlohmann/json.hpp>

#include "contrastive/common.h"
#include "contrastive/io.h"
#include "contrastive/loaded_model.h"
#include "contrastive/models.h"
#include "contrastive/platform.h"
#include "models/amdim_encoder.h"

#ifdef CONTRASTIVE_WITH_ONNX
#include <onnx/checker.h>
#include <onnx/onnx_pb.h>
#endif

namespace contrastive {

#ifndef CONTRASTIVE_WITH_ONNX

bool onnx_export_available() { return false; }

void export_onnx(const LoadedModel&, const std::string&, const OnnxExportOptions&) {
  throw InputError(
      "--format onnx: this build has no ONNX exporter; install libonnx-dev and libprotobuf-dev (Debian) and "
      "rebuild");
}

#else

bool onnx_export_available() { return true; }

namespace {

namespace nn = torch::nn;

// LibTorch 1.13's option variants are c10::variant; 2.x's are std::variant.
#if TORCH_VERSION_MAJOR < 2
using c10::get_if;
using c10::holds_alternative;
#else
using std::get_if;
using std::holds_alternative;
#endif

// A graph under construction: initializers, nodes and fresh value names.
class Graph {
 public:
  explicit Graph(onnx::GraphProto* graph) : g_(graph) {}

  // A float32 initializer holding `t` (any dtype, copied to contiguous CPU float32).
  std::string constant(const std::string& name, const torch::Tensor& t) {
    auto c = t.detach().to(torch::kCPU, torch::kFloat).contiguous();
    auto* init = g_->add_initializer();
    init->set_name(name);
    init->set_data_type(onnx::TensorProto::FLOAT);
    for (int64_t d : c.sizes()) init->add_dims(d);
    init->set_raw_data(std::string(static_cast<const char*>(c.data_ptr()), c.numel() * sizeof(float)));
    return name;
  }
  // An int64 initializer (shapes, axes).
  std::string ints(const std::string& name, const std::vector<int64_t>& values) {
    auto* init = g_->add_initializer();
    init->set_name(name);
    init->set_data_type(onnx::TensorProto::INT64);
    init->add_dims(static_cast<int64_t>(values.size()));
    for (int64_t v : values) init->add_int64_data(v);
    return name;
  }
  onnx::NodeProto* node(const std::string& op, const std::vector<std::string>& inputs, const std::string& output) {
    auto* n = g_->add_node();
    n->set_op_type(op);
    n->set_name(output);
    for (const auto& i : inputs) n->add_input(i);
    n->add_output(output);
    return n;
  }
  std::string fresh(const std::string& hint) { return hint + "_" + std::to_string(counter_++); }

 private:
  onnx::GraphProto* g_;
  int64_t counter_ = 0;
};

void attr_ints(onnx::NodeProto* n, const std::string& name, const std::vector<int64_t>& values) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INTS);
  for (int64_t v : values) a->add_ints(v);
}
void attr_int(onnx::NodeProto* n, const std::string& name, int64_t value) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(value);
}
void attr_float(onnx::NodeProto* n, const std::string& name, float value) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::FLOAT);
  a->set_f(value);
}

struct BNParams {
  torch::Tensor weight, bias, mean, var;  // weight/bias undefined: not affine
  double eps = 1e-5;
};
BNParams bn_params(const SplitBatchNorm2dImpl& bn) {
  return {bn.weight, bn.bias, bn.running_mean, bn.running_var, bn.eps()};
}
BNParams bn_params(const nn::BatchNorm2dImpl& bn) {
  return {bn.weight, bn.bias, bn.running_mean, bn.running_var, bn.options.eps()};
}

// Emits the network pieces. `prefix` names initializers after the module path (conv1.weight, layer1.0.bn1.bias).
class Emitter {
 public:
  Emitter(Graph& g, bool fold) : g_(g), fold_(fold) {}

  // A Conv node; with `fold_into`, that BatchNorm folded into its weights and bias.
  std::string conv(const std::string& x, const nn::Conv2dImpl& c, const std::string& name,
                   const BNParams* fold_into = nullptr) {
    const auto& o = c.options;
    const auto* pad = get_if<torch::ExpandingArray<2> >(&o.padding());
    if (!pad || !holds_alternative<torch::enumtype::kZeros>(o.padding_mode()))
      throw InputError("export --format onnx: convolution " + name + " has a padding the exporter does not write");
    torch::Tensor w = c.weight.detach().to(torch::kDouble);
    torch::Tensor b = c.bias.defined() ? c.bias.detach().to(torch::kDouble) : torch::Tensor();
    if (const BNParams* bn = fold_into) {  // w' = w·γ/√(σ²+ε), b' = (b − μ)·γ/√(σ²+ε) + β, in float64
      auto scale = bn->var.detach().to(torch::kDouble).add(bn->eps).rsqrt();
      if (bn->weight.defined()) scale = scale * bn->weight.detach().to(torch::kDouble);
      w = w * scale.view({-1, 1, 1, 1});
      auto shift = (b.defined() ? b : torch::zeros_like(scale)) - bn->mean.detach().to(torch::kDouble);
      b = shift * scale + (bn->bias.defined() ? bn->bias.detach().to(torch::kDouble) : torch::zeros_like(scale));
    }
    std::vector<std::string> inputs{x, g_.constant(name + ".weight", w)};
    if (b.defined()) inputs.push_back(g_.constant(name + ".bias", b));
    const std::string y = g_.fresh(name);
    auto* n = g_.node("Conv", inputs, y);
    attr_ints(n, "kernel_shape", {o.kernel_size()->at(0), o.kernel_size()->at(1)});
    attr_ints(n, "strides", {o.stride()->at(0), o.stride()->at(1)});
    attr_ints(n, "pads", {(*pad)->at(0), (*pad)->at(1), (*pad)->at(0), (*pad)->at(1)});
    attr_ints(n, "dilations", {o.dilation()->at(0), o.dilation()->at(1)});
    attr_int(n, "group", o.groups());
    return y;
  }
  // conv followed by its BatchNorm (folded or a node), named after the BN's module path.
  std::string conv_bn(const std::string& x, const nn::Conv2dImpl& c, const std::string& conv_name,
                      const BNParams& bn, const std::string& bn_name) {
    if (fold_) return conv(x, c, conv_name, &bn);
    return batch_norm(conv(x, c, conv_name), bn, bn_name);
  }
  std::string batch_norm(const std::string& x, const BNParams& bn, const std::string& name) {
    const int64_t ch = bn.mean.size(0);
    auto w = bn.weight.defined() ? bn.weight : torch::ones({ch});
    auto b = bn.bias.defined() ? bn.bias : torch::zeros({ch});
    const std::string y = g_.fresh(name);
    auto* n = g_.node("BatchNormalization",
                      {x, g_.constant(name + ".weight", w), g_.constant(name + ".bias", b),
                       g_.constant(name + ".running_mean", bn.mean), g_.constant(name + ".running_var", bn.var)},
                      y);
    attr_float(n, "epsilon", static_cast<float>(bn.eps));
    return y;
  }
  std::string op(const std::string& type, const std::vector<std::string>& inputs, const std::string& hint) {
    const std::string y = g_.fresh(hint);
    g_.node(type, inputs, y);
    return y;
  }
  std::string relu(const std::string& x) { return op("Relu", {x}, "relu"); }
  std::string add(const std::string& a, const std::string& b) { return op("Add", {a, b}, "add"); }
  std::string average_pool(const std::string& x, int64_t k, int64_t s) {
    const std::string y = g_.fresh("avgpool");
    auto* n = g_.node("AveragePool", {x}, y);
    attr_ints(n, "kernel_shape", {k, k});
    attr_ints(n, "strides", {s, s});
    return y;
  }
  // [N, C, H, W] -> [N, C]: global average pool, then flatten.
  std::string pool_flatten(const std::string& x, const std::string& output) {
    const std::string p = op("GlobalAveragePool", {x}, "gap");
    auto* n = g_.node("Flatten", {p}, output);
    attr_int(n, "axis", 1);
    return output;
  }
  Graph& graph() { return g_; }

 private:
  Graph& g_;
  bool fold_;
};

// A residual block's shortcut: its downsample (1×1 conv + BN) when it has one, else the input.
std::string shortcut(Emitter& e, const std::string& x, nn::Sequential& downsample, const std::string& p) {
  if (!downsample) return x;
  return e.conv_bn(x, *downsample[0]->as<nn::Conv2dImpl>(), p + "downsample.0",
                   bn_params(*downsample[1]->as<SplitBatchNorm2dImpl>()), p + "downsample.1");
}

std::string block_of(Emitter& e, const std::string& x, nn::Module& block, const std::string& p) {
  if (auto* b = block.as<BasicBlockImpl>()) {
    auto h = e.relu(e.conv_bn(x, *b->conv1, p + "conv1", bn_params(*b->bn1), p + "bn1"));
    h = e.conv_bn(h, *b->conv2, p + "conv2", bn_params(*b->bn2), p + "bn2");
    return e.relu(e.add(h, shortcut(e, x, b->downsample, p)));
  }
  auto* b = block.as<BottleneckImpl>();
  if (!b) throw InputError("export --format onnx: unknown ResNet block at " + p);
  auto h = e.relu(e.conv_bn(x, *b->conv1, p + "conv1", bn_params(*b->bn1), p + "bn1"));
  h = e.relu(e.conv_bn(h, *b->conv2, p + "conv2", bn_params(*b->bn2), p + "bn2"));
  h = e.conv_bn(h, *b->conv3, p + "conv3", bn_params(*b->bn3), p + "bn3");
  return e.relu(e.add(h, shortcut(e, x, b->downsample, p)));
}

// Returns the features' value name; adds "logits" when `classifier`.
std::string emit_resnet(Emitter& e, ResNetImpl& net, const std::string& x, bool classifier) {
  auto h = e.relu(e.conv_bn(x, *net.conv1, "conv1", bn_params(*net.bn1), "bn1"));
  int stage = 1;
  for (auto* layer : {&net.layer1, &net.layer2, &net.layer3, &net.layer4}) {
    int64_t i = 0;
    for (auto& block : **layer)
      h = block_of(e, h, *block.ptr(), "layer" + std::to_string(stage) + "." + std::to_string(i++) + ".");
    ++stage;
  }
  const std::string features = e.pool_flatten(h, "features");
  if (classifier) {
    auto* n = e.graph().node(
        "Gemm",
        {features, e.graph().constant("fc.weight", net.fc->weight), e.graph().constant("fc.bias", net.fc->bias)},
        "logits");
    attr_int(n, "transB", 1);
  }
  return features;
}

std::string amdim_layer(Emitter& e, const std::string& x, AMDIMResLayerImpl& l, const std::string& p) {
  auto h = e.conv(e.relu(e.conv(x, *l.conv1, p + "conv1")), *l.conv2, p + "conv2");
  std::string s = x;
  if (l.kernel() > 1 || l.stride() > 1) s = e.average_pool(x, l.kernel(), l.stride());
  if (l.proj) s = e.conv(s, *l.proj, p + "proj");
  auto y = e.add(h, s);
  return l.relu_out() ? e.relu(y) : y;
}

std::string emit_amdim(Emitter& e, AMDIMEncoderImpl& enc, std::string x, int64_t height, int64_t width) {
  if (height < 32 || width < 32) {  // the encoder's own zero padding to 32×32 (amdim_encoder.h)
    const int64_t ph = std::max<int64_t>(0, 32 - height), pw = std::max<int64_t>(0, 32 - width);
    auto& g = e.graph();
    x = e.op("Pad", {x, g.ints("amdim_pads", {0, 0, ph / 2, pw / 2, 0, 0, ph - ph / 2, pw - pw / 2})}, "pad");
  }
  auto h = amdim_layer(e, e.relu(e.conv(x, *enc.stem, "stem")), *enc.stem_res, "stem_res.");
  for (auto [seq, name] :
       {std::pair{&enc.down1, "down1"}, {&enc.down2, "down2"}, {&enc.mid1, "mid1"}, {&enc.mid2, "mid2"}}) {
    int64_t i = 0;
    for (auto& layer : **seq)
      h = amdim_layer(e, h, *layer.ptr()->as<AMDIMResLayerImpl>(),
                      std::string(name) + "." + std::to_string(i++) + ".");
  }
  h = amdim_layer(e, h, *enc.final_layer, "final.");
  h = e.batch_norm(h, bn_params(*enc.final_bn), "final_bn");
  return e.pool_flatten(h, "features");
}

void set_dims(onnx::ValueInfoProto* v, const std::vector<int64_t>& dims) {
  v->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT);
  auto* shape = v->mutable_type()->mutable_tensor_type()->mutable_shape();
  for (size_t i = 0; i < dims.size(); ++i) {
    auto* d = shape->add_dim();
    if (i == 0)
      d->set_dim_param("batch");
    else
      d->set_dim_value(dims[i]);
  }
}

void add_meta(onnx::ModelProto& model, const std::string& key, const std::string& value) {
  auto* p = model.add_metadata_props();
  p->set_key(key);
  p->set_value(value);
}

}  // namespace

void export_onnx(const LoadedModel& m, const std::string& out, const OnnxExportOptions& options) {
  auto backbone = m.method->backbone();
  auto* resnet = backbone ? backbone->as<ResNetImpl>() : nullptr;
  auto* amdim = backbone ? backbone->as<AMDIMEncoderImpl>() : nullptr;
  const std::string method = m.config.method.name;
  if (!resnet && !amdim)
    throw InputError("export --format onnx: the " + method +
                     " model's backbone has no ONNX exporter (the CIFAR ResNets and the AMDIM encoder have one)");
  if (options.with_classifier() && !(resnet && resnet->fc))
    throw InputError("export --format onnx --with-classifier: the " + method +
                     " model has no classifier; export its features without --with-classifier");
  backbone->eval();
  const auto& train = *m.data.train;
  const int64_t c = train.channels(), h = train.height(), w = train.width();

  onnx::ModelProto model;
  model.set_ir_version(8);  // the IR of opset 17
  model.set_producer_name("contrastive");
  model.set_producer_version(build_info().version);
  model.set_doc_string(method + " " + m.config.model.arch + " backbone exported by contrastive");
  auto* opset = model.add_opset_import();
  opset->set_domain("");
  opset->set_version(options.opset());
  auto* graph = model.mutable_graph();
  graph->set_name(method + "_" + m.config.model.arch);
  Graph g(graph);
  Emitter e(g, options.fold_batchnorm());

  set_dims(graph->add_input(), {-1, c, h, w});
  graph->mutable_input(0)->set_name("input");
  std::string x = "input";
  if (options.bake_normalization()) {
    auto mean = torch::tensor(std::vector<double>(m.norm.mean.begin(), m.norm.mean.end())).view({1, -1, 1, 1});
    auto stdv = torch::tensor(std::vector<double>(m.norm.std.begin(), m.norm.std.end())).view({1, -1, 1, 1});
    x = e.op("Sub", {x, g.constant("normalize.mean", mean)}, "normalize_sub");
    x = e.op("Div", {x, g.constant("normalize.std", stdv)}, "normalize_div");
  }
  torch::NoGradGuard no_grad;
  int64_t dim = 0;
  if (resnet) {
    emit_resnet(e, *resnet, x, options.with_classifier());
    dim = resnet->feature_dim();
  } else {
    emit_amdim(e, *amdim, x, h, w);
    dim = amdim->n_rkhs();
  }
  set_dims(graph->add_output(), {-1, dim});
  graph->mutable_output(0)->set_name("features");
  if (options.with_classifier()) {
    set_dims(graph->add_output(), {-1, resnet->fc->weight.size(0)});
    graph->mutable_output(1)->set_name("logits");
  }

  add_meta(model, "method", method);
  add_meta(model, "arch", m.config.model.arch);
  add_meta(model, "width", std::to_string(m.config.model.width));
  add_meta(model, "channels", std::to_string(c));
  add_meta(model, "image_size", nlohmann::json({h, w}).dump());
  add_meta(model, "mean", nlohmann::json(m.norm.mean).dump());
  add_meta(model, "std", nlohmann::json(m.norm.std).dump());
  add_meta(model, "class_names", nlohmann::json(train.class_names()).dump());
  add_meta(model, "normalization_baked", options.bake_normalization() ? "true" : "false");
  add_meta(model, "input",
           options.bake_normalization() ? "float32 [batch, C, H, W], pixel values in [0, 1]"
                                        : "float32 [batch, C, H, W], (x - mean) / std");
  try {
    onnx::checker::check_model(model);
  } catch (const std::exception& ex) {
    throw RunError("export --format onnx: the ONNX checker refused the graph: " + std::string(ex.what()));
  }
  std::string bytes;
  if (!model.SerializeToString(&bytes)) throw RunError("export --format onnx: could not serialise the model");
  write_file_atomic(out, bytes);
}

#endif

}  // namespace contrastive
