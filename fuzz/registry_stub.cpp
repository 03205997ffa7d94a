// fuzz_config links the config core and the front door alone (no LibTorch): this stands in for the method files
// (the built-in list the registry table fills itself from, and the augmentation presets) with two option-only
// methods, so that the per-method sections, shared flags and legacy `method:` keys are fuzzed too.
// Their factories are never called (fuzz_config only parses, resolves and validates).
#include <stdexcept>

#include "contrastive/augment_names.h"
#include "contrastive/registry.h"

namespace contrastive {

namespace {

struct FuzzOptions {
  double temperature = 0.1;
  int64_t size = 16;
  bool flag = false;
  std::string mode = "a";
  std::vector<double> weights{1, 1};
};

std::vector<OptionKey> fuzz_keys(FuzzOptions& o) {
  return {{"temperature", "temperature", &o.temperature, "", {}},
          {"size", "size", &o.size, "", {"old_size"}},
          {"flag", "flag", &o.flag, "", {}},
          {"mode", "mode", &o.mode, "", {}},
          {"weights", "weights", &o.weights, "", {}}};
}

MethodInfo fuzz_method(const std::string& name, bool classifier) {
  MethodInfo m;
  m.name = name;
  m.classifier = classifier;
  m.min_views = 1;
  m.max_views = 4;
  m.options = options_factory<FuzzOptions>(FuzzOptions(), fuzz_keys);
  m.validate = [name](const Config& c, int64_t) {
    const auto& o = method_options<FuzzOptions>(c.method, name);
    check_option(o.temperature > 0, "temperature", "must be > 0");
    check_option(o.mode == "a" || o.mode == "b", "mode", "a | b");
  };
  m.make = [](const MethodSpec&) -> std::shared_ptr<MethodImpl> { throw std::logic_error("fuzz: no methods"); };
  return m;
}

}  // namespace

void register_builtin_methods(MethodRegistry& registry) {
  registry.add(fuzz_method("cds", true));  // the config's default method
  registry.add(fuzz_method("other", false));
}

const std::vector<std::string>& augment_preset_names() {
  static const std::vector<std::string> names{"simclr-cifar", "supervised", "cds", "test"};
  return names;
}

}  // namespace contrastive
