// The built-in methods: their registration (the list is builtin_methods.inc), the backbone factory and the
// method factory over the registry.
#include "contrastive/common.h"
#include "contrastive/method.h"
#include "contrastive/registry.h"

namespace contrastive {

#define CONTRASTIVE_METHOD(name) void register_##name(MethodRegistry& registry);
#include "builtin_methods.inc"
#undef CONTRASTIVE_METHOD

void register_builtin_methods(MethodRegistry& registry) {
#define CONTRASTIVE_METHOD(name) register_##name(registry);
#include "builtin_methods.inc"
#undef CONTRASTIVE_METHOD
}

ResNet make_backbone(const Config& config, int64_t in_channels, int64_t num_classes, int64_t bn_splits) {
  return ResNet(ResNetOptions()
                    .arch(config.model.arch)
                    .width(config.model.width)
                    .in_channels(in_channels)
                    .num_classes(num_classes)
                    .zero_init_residual(config.model.zero_init_residual == 1)
                    .bn_splits(bn_splits));
}

MethodPtr make_method(const MethodSpec& spec) { return method_registry().at(spec.config.method.name).make(spec); }

}  // namespace contrastive
