#include "contrastive/common.h"
#include "method_base.h"

namespace contrastive {

MethodPtr make_ce(const MethodSpec& spec);
MethodPtr make_cds(const MethodSpec& spec);
MethodPtr make_supcon(const MethodSpec& spec);
MethodPtr make_moco(const MethodSpec& spec);
MethodPtr make_simsiam(const MethodSpec& spec);
MethodPtr make_byol(const MethodSpec& spec);
MethodPtr make_amdim(const MethodSpec& spec);

ResNet make_backbone(const Config& config, int64_t in_channels, int64_t num_classes, int64_t bn_splits) {
  return ResNet(ResNetOptions()
                    .arch(config.model.arch)
                    .width(config.model.width)
                    .in_channels(in_channels)
                    .num_classes(num_classes)
                    .zero_init_residual(config.model.zero_init_residual == 1)
                    .bn_splits(bn_splits));
}

MethodPtr make_method(const MethodSpec& spec) {
  const std::string& m = spec.config.method.name;
  if (m == "ce") return make_ce(spec);
  if (m == "cds") return make_cds(spec);
  if (m == "supcon" || m == "simclr") return make_supcon(spec);
  if (m == "moco") return make_moco(spec);
  if (m == "simsiam") return make_simsiam(spec);
  if (m == "byol") return make_byol(spec);
  if (m == "amdim") return make_amdim(spec);
  throw InputError("unknown method '" + m + "' (ce | supcon | simclr | moco | simsiam | byol | amdim | cds)");
}

}  // namespace contrastive
