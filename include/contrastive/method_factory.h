// A method built from its typed options, without a Config in sight (docs/adding-a-method.md):
//
//   auto method = make_method(SimCLROptions().temperature(0.2), BackboneOptions().width(8),
//   MethodData().channels(1));
//
// The options type names the method (each registered method has its own, methods/<name>.h); the shared settings
// the method depends on take its reference defaults and are validated as `contrastive train` would. A method
// registered by the application (register_method) is built the same way from its own options type.
#pragma once

#include <torch/arg.h>
#include <torch/types.h>

#include <cstdint>
#include <string>
#include <type_traits>
#include <typeinfo>

#include "contrastive/methods.h"
#include "contrastive/registry.h"

namespace contrastive {

class Dataset;

// The backbone a method trains.
struct BackboneOptions {
  TORCH_ARG(std::string, arch) = "resnet18";    // resnet18 | resnet34 | resnet50 | a method's own (amdim)
  TORCH_ARG(int64_t, width) = 16;               // base channels (64 in the papers)
  TORCH_ARG(int64_t, zero_init_residual) = -1;  // -1: the method's default
};

// What the method is told of its training data when no Dataset is given.
struct MethodData {
  TORCH_ARG(int64_t, channels) = 3;  // 1 for grey images
  TORCH_ARG(int64_t, image_size) = 32;
  TORCH_ARG(int64_t, num_classes) = 10;  // classifier methods (ce, cds)
  TORCH_ARG(int64_t, train_size) = 0;    // memory banks and label splits need it
};

// The registered method whose options are `options_type` (a MethodOptionsOf<O>): its name. None, or several
// methods sharing that type -> std::logic_error (then name the method: make_method(name, options, ...)).
std::string method_name_for(const std::type_info& options_type);

// The Config make_method resolves and validates: the method's defaults for the shared settings and the
// backbone's. Build a run's Config like this when you need the rest (data, optimizer, Trainer).
Config method_config(const std::string& name, const BackboneOptions& backbone);

// Builds method `name` from a Config that holds its options (method_config, then options set): resolved,
// validated, then made for `data` or for the images of `train`. Bad values -> InputError.
MethodPtr make_method(Config config, const MethodData& data);
MethodPtr make_method(Config config, const Dataset& train);

// O: a method's options struct (not a Config or a MethodSpec, which have their own overloads).
template <typename O>
using IfMethodOptions = std::enable_if_t<!std::is_same_v<O, Config> && !std::is_same_v<O, MethodSpec> &&
                                         !std::is_convertible_v<O, std::string>>;

template <typename O, typename = IfMethodOptions<O>>
Config method_config(const O& options, const BackboneOptions& backbone = BackboneOptions()) {
  Config config = method_config(method_name_for(typeid(MethodOptionsOf<O>)), backbone);
  method_options<O>(config.method, config.method.name) = options;
  return config;
}

template <typename O, typename = IfMethodOptions<O>>
MethodPtr make_method(const O& options, const BackboneOptions& backbone = BackboneOptions(),
                      const MethodData& data = MethodData()) {
  return make_method(method_config(options, backbone), data);
}

template <typename O, typename = IfMethodOptions<O>>
MethodPtr make_method(const O& options, const BackboneOptions& backbone, const Dataset& train) {
  return make_method(method_config(options, backbone), train);
}

}  // namespace contrastive
