// Methods built from typed options (method_factory.h): the registered method of an options type, its Config,
// resolved and validated as a run's would be.
#include "contrastive/method_factory.h"

#include <stdexcept>
#include <typeinfo>
#include <utility>

#include "contrastive/data.h"
#include "contrastive/resolve.h"
#include "contrastive/train.h"

namespace contrastive {

std::string method_name_for(const std::type_info& options_type) {
  std::string found;
  for (const auto& info : method_registry().all()) {
    if (!info.options) continue;
    const auto options = info.options();
    if (typeid(*options) != options_type) continue;
    if (!found.empty())
      throw std::logic_error("make_method: methods '" + found + "' and '" + info.name +
                             "' share this options type; name the method");
    found = info.name;
  }
  if (found.empty()) throw std::logic_error("make_method: no registered method has this options type");
  return found;
}

Config method_config(const std::string& name, const BackboneOptions& backbone) {
  Config config;
  config.method.name = method_registry().at(name).name;  // unknown -> InputError listing the methods
  config.model.arch = backbone.arch();
  config.model.width = backbone.width();
  config.model.zero_init_residual = backbone.zero_init_residual();
  return config;
}

namespace {

// Through the front door (no speed choices: the caller's Trainer or loop decides precision and layout).
MethodPtr make_resolved(Config config, MethodSpec spec) {
  spec.config = resolve_config(std::move(config), {1, SpeedContext(), false}).config;
  return method_registry().at(spec.config.method.name).make(spec);
}

}  // namespace

MethodPtr make_method(Config config, const MethodData& data) {
  MethodSpec spec;
  spec.in_channels = data.channels();
  spec.image_size = data.image_size();
  spec.num_classes = data.num_classes();
  spec.train_size = data.train_size();
  return make_resolved(std::move(config), spec);
}

MethodPtr make_method(Config config, const Dataset& train) {
  MethodSpec spec = method_spec(config, train);
  return make_resolved(std::move(config), spec);
}

}  // namespace contrastive
