// The public method API (method_factory.h, registry.h): methods built from their typed options, and a method that
// an application registers from outside the library's sources.
#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>
#include <typeinfo>

#include "contrastive/contrastive.h"

using namespace contrastive;

namespace {

// The loss of `method` on two fixed views of 8 grey 32x32 images.
double loss_on_fixed_views(MethodImpl& method) {
  auto gen = step_generator(3);
  auto a = torch::randn({8, 1, 32, 32}, gen, torch::kFloat), b = torch::randn({8, 1, 32, 32}, gen, torch::kFloat);
  method.train();
  return method.loss({a, b}, torch::arange(8), torch::arange(8), StepContext()).total().item<double>();
}

// An application's method: the backbone's mean squared feature, with two options of its own.
struct ToyOptions {
  TORCH_ARG(double, temperature) = 0.3;  // shares --temperature (a double) with the built-in methods
  TORCH_ARG(int64_t, toy_size) = 5;
};

class ToyMethod : public ResNetMethod {
 public:
  explicit ToyMethod(const MethodSpec& spec)
      : ResNetMethod("toy", spec, 0), size(options_of<ToyOptions>(spec).toy_size()) {}
  LossTerms loss(const std::vector<torch::Tensor>& views, const torch::Tensor&, const torch::Tensor&,
                 const StepContext&) override {
    LossTerms out;
    out.terms["toy"] = net->features(views[0]).pow(2).mean();
    return out;
  }
  int64_t size;
};

MethodInfo toy_info(const std::string& name = "toy") {
  MethodInfo m;
  m.name = name;
  m.summary = "a method of the test's own";
  m.options = options_factory<ToyOptions>(ToyOptions(), [](ToyOptions& o) {
    return std::vector<OptionKey>{{"temperature", "temperature", &o.temperature(), "its temperature"},
                                  {"toy_size", "toy-size", &o.toy_size(), "its size"}};
  });
  m.validate = [name](const Config& c, int64_t) {
    check_at_least(method_options<ToyOptions>(c.method, name).toy_size(), 1, "toy-size");
  };
  m.make = [](const MethodSpec& spec) -> MethodPtr { return std::make_shared<ToyMethod>(spec); };
  return m;
}

struct ClashingOptions {
  TORCH_ARG(int64_t, temperature) = 1;  // --temperature as an integer: every other method has a double
};

}  // namespace

TEST(MethodApi, EveryBuiltInOptionsTypeNamesItsMethod) {
  EXPECT_EQ(method_name_for(typeid(MethodOptionsOf<SimCLROptions>)), "simclr");
  EXPECT_EQ(method_name_for(typeid(MethodOptionsOf<SupConOptions>)), "supcon");
  EXPECT_EQ(method_name_for(typeid(MethodOptionsOf<CDSOptions>)), "cds");
  EXPECT_EQ(method_name_for(typeid(MethodOptionsOf<CEOptions>)), "ce");
  EXPECT_EQ(method_name_for(typeid(MethodOptionsOf<MoCoOptions>)), "moco");
  EXPECT_EQ(method_name_for(typeid(MethodOptionsOf<SimSiamOptions>)), "simsiam");
  EXPECT_EQ(method_name_for(typeid(MethodOptionsOf<BYOLOptions>)), "byol");
  EXPECT_EQ(method_name_for(typeid(MethodOptionsOf<AMDIMOptions>)), "amdim");
  EXPECT_EQ(method_name_for(typeid(MethodOptionsOf<VICRegOptions>)), "vicreg");
  EXPECT_EQ(method_name_for(typeid(MethodOptionsOf<BarlowTwinsOptions>)), "barlowtwins");
  EXPECT_EQ(method_name_for(typeid(MethodOptionsOf<NNCLROptions>)), "nnclr");
  EXPECT_EQ(method_name_for(typeid(MethodOptionsOf<DINOOptions>)), "dino");
  EXPECT_THROW(method_name_for(typeid(MethodOptionsOf<ToyOptions>)), std::logic_error);  // not registered
  // The defaults that tell SimCLR from SupCon.
  EXPECT_DOUBLE_EQ(SimCLROptions().temperature(), 0.5);
  EXPECT_DOUBLE_EQ(SupConOptions().temperature(), 0.1);
}

TEST(MethodApi, TypedOptionsReachTheMethod) {
  torch::manual_seed(0);
  auto typed = make_method(SimCLROptions().temperature(0.2), BackboneOptions().width(4), MethodData().channels(1));
  // The same method built the long way, from a Config with the option set by name.
  Config config;
  config.method.name = "simclr";
  config.model.width = 4;
  method_option<double>(config, "temperature") = 0.2;
  resolve_defaults(config);
  validate(config);
  MethodSpec spec;
  spec.config = config;
  spec.in_channels = 1;
  torch::manual_seed(0);
  auto named = make_method(spec);
  torch::manual_seed(0);
  auto at_default = make_method(SimCLROptions(), BackboneOptions().width(4), MethodData().channels(1));

  EXPECT_EQ(typed->method_name(), "simclr");
  const double t = loss_on_fixed_views(*typed), n = loss_on_fixed_views(*named),
               d = loss_on_fixed_views(*at_default);
  EXPECT_TRUE(std::isfinite(t));
  EXPECT_DOUBLE_EQ(t, n);
  EXPECT_GT(std::abs(t - d), 1e-3) << "the temperature did not reach the loss";
}

TEST(MethodApi, TypedOptionsAreValidatedAsARunsWouldBe) {
  EXPECT_THROW(make_method(SimCLROptions().temperature(-1), BackboneOptions().width(4)), InputError);
  EXPECT_THROW(make_method(MoCoOptions().queue_size(0), BackboneOptions().width(4)), InputError);
  EXPECT_THROW(make_method(SimCLROptions(), BackboneOptions().arch("vgg")), InputError);
  // The Config that make_method resolves carries the options and the backbone.
  Config c = method_config(BYOLOptions().proj_dim(64), BackboneOptions().width(8).arch("resnet34"));
  EXPECT_EQ(c.method.name, "byol");
  EXPECT_EQ(c.model.width, 8);
  EXPECT_EQ(c.model.arch, "resnet34");
  EXPECT_EQ(method_option<int64_t>(c, "proj_dim"), 64);
}

TEST(MethodApi, AnApplicationRegistersAMethod) {
  register_method(toy_info());
  ASSERT_NE(method_registry().find("toy"), nullptr);
  EXPECT_NE(method_registry().names_joined().find("toy"), std::string::npos);

  // A Config built after the registration holds its options: config keys (flags), a YAML section, the round trip.
  Config config;
  bool flag = false;
  for (const auto& k : config_keys(config)) flag = flag || (k.section == "toy" && k.flag == "toy-size");
  EXPECT_TRUE(flag);
  config_from_yaml_string("method:\n  name: toy\ntoy:\n  toy_size: 9\n", config, "test");
  EXPECT_EQ(method_options<ToyOptions>(config.method, "toy").toy_size(), 9);
  EXPECT_NE(config_to_yaml(config).find("toy_size: 9"), std::string::npos);

  // Built from its typed options, validated by its own check.
  auto m = make_method(ToyOptions().toy_size(7), BackboneOptions().width(4), MethodData().channels(1));
  ASSERT_EQ(m->method_name(), "toy");
  EXPECT_EQ(std::dynamic_pointer_cast<ToyMethod>(m)->size, 7);
  EXPECT_TRUE(std::isfinite(loss_on_fixed_views(*m)));
  EXPECT_THROW(make_method(ToyOptions().toy_size(0), BackboneOptions().width(4)), InputError);

  // A name given twice, or a shared flag with another type, is the application's programming error.
  EXPECT_THROW(register_method(toy_info()), std::logic_error);
  MethodInfo clash = toy_info("clash");
  clash.options = options_factory<ClashingOptions>(ClashingOptions(), [](ClashingOptions& o) {
    return std::vector<OptionKey>{{"temperature", "temperature", &o.temperature(), ""}};
  });
  EXPECT_THROW(register_method(clash), std::logic_error);
  EXPECT_EQ(method_registry().find("clash"), nullptr);
}
