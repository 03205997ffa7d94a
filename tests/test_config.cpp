#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <set>

#include "contrastive/common.h"
#include "contrastive/config.h"
#include "contrastive/registry.h"
#include "contrastive/resolve.h"
#include "test_util.h"

using namespace contrastive;

TEST(Config, YamlRoundTripKeepsEveryValue) {
  Config a;
  a.method.name = "moco";
  a.optim.lr = 0.25;
  a.train.epochs = 7;
  method_option<bool>(a, "symmetric") = true;
  method_option<double>(a, "temperature") = 0.2;
  a.data.path = "some path: with colon";
  Config b;
  config_from_yaml_string(config_to_yaml(a), b, "test");
  EXPECT_EQ(config_to_yaml(a), config_to_yaml(b));
  EXPECT_EQ(b.method.name, "moco");
  EXPECT_DOUBLE_EQ(b.optim.lr, 0.25);
  EXPECT_EQ(b.train.epochs, 7);
  EXPECT_TRUE(method_option<bool>(b, "symmetric"));
  EXPECT_DOUBLE_EQ(method_option<double>(b, "temperature"), 0.2);
  EXPECT_EQ(b.data.path, "some path: with colon");
  Config c;  // cds, the default
  method_option<std::vector<double>>(c, "weights") = {0.5, 1, 0, 2};
  Config d;
  config_from_yaml_string(config_to_yaml(c), d, "test");
  EXPECT_EQ(method_option<std::vector<double>>(d, "weights"), (std::vector<double>{0.5, 1, 0, 2}));
}

// config.yaml holds the shared sections and the run's own method's section only, with short floats.
TEST(Config, YamlHoldsOnlyTheRunsMethodSectionWithShortFloats) {
  Config c;
  c.method.name = "cds";
  resolve_defaults(c);
  const std::string yaml = config_to_yaml(c);
  EXPECT_NE(yaml.find("\ncds:\n"), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("temperature: 0.07\n"), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("lambda: 0.1\n"), std::string::npos) << yaml;
  EXPECT_EQ(yaml.find("0.0700000"), std::string::npos) << yaml;
  for (const char* other : {"moco:", "queue_size", "simclr:", "byol:", "bank_negatives"})
    EXPECT_EQ(yaml.find(other), std::string::npos) << other << " in\n" << yaml;
  Config m;
  m.method.name = "moco";
  const std::string moco = config_to_yaml(m);
  EXPECT_NE(moco.find("\nmoco:\n"), std::string::npos) << moco;
  EXPECT_EQ(moco.find("\ncds:"), std::string::npos) << moco;
}

// Run directories of earlier versions have one flat `method:` section with every method's keys.
TEST(Config, LegacyFlatMethodSectionIsReadIntoTheMethodsOwn) {
  Config c;
  config_from_yaml_string(
      "method:\n  name: cds\n  temperature: 0.05\n  cds_lambda: 0.3\n  cds_weights: [1, 0, 1, 1]\n"
      "  queue_size: 4096\n  symmetric: false\n  bank_momentum: 0.5\n",
      c, "old.yaml");
  EXPECT_EQ(c.method.name, "cds");
  EXPECT_DOUBLE_EQ(method_option<double>(c, "temperature"), 0.05);
  EXPECT_DOUBLE_EQ(method_option<double>(c, "lambda"), 0.3);
  EXPECT_EQ(method_option<std::vector<double>>(c, "weights"), (std::vector<double>{1, 0, 1, 1}));
  // The other methods' keys were inert for a CDS run and are dropped; a key no method ever had is an error.
  Config d;
  try {
    config_from_yaml_string("method:\n  name: simclr\n  temprature: 0.5\n", d, "old.yaml");
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("method.temprature"), std::string::npos) << e.what();
  }
  // The section of another method may sit in a config file (switch with --method); it is kept.
  Config e;
  config_from_yaml_string("method:\n  name: simclr\nmoco:\n  queue_size: 8192\n", e, "both.yaml");
  EXPECT_EQ(method_option<int64_t>(e, "queue_size", "moco"), 8192);
  EXPECT_THROW(config_from_yaml_string("moco:\n  queue_sise: 1\n", e, "x.yaml"), InputError);
}

// The registry is the one list of methods: each resolves and validates with its own defaults, and every key
// of its section is unique there.
TEST(Config, EveryRegisteredMethodResolvesAndValidates) {
  const auto names = method_registry().names();
  EXPECT_GE(names.size(), 8u);
  for (const auto& name : names) {
    Config c;
    c.method.name = name;
    const auto& info = method_registry().at(name);
    if (!info.arch.empty()) c.model.arch = info.arch;
    resolve_defaults(c);
    EXPECT_NO_THROW(validate(c)) << name;
    std::set<std::string> seen;
    for (auto& k : c.method.options.find(name)->keys())
      EXPECT_TRUE(seen.insert(k.name).second) << name << "." << k.name;
    EXPECT_EQ(c.augment.views >= info.min_views && c.augment.views <= info.max_views, true) << name;
  }
  EXPECT_THROW(method_registry().at("no-such-method"), InputError);
}

TEST(Config, UnknownKeyAndWrongTypeNameTheKey) {
  Config c;
  try {
    config_from_yaml_string("optim:\n  lrr: 0.1\n", c, "x.yaml");
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("optim.lrr"), std::string::npos) << e.what();
  }
  try {
    config_from_yaml_string("train:\n  epochs: many\n", c, "x.yaml");
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("train.epochs"), std::string::npos) << e.what();
  }
  EXPECT_THROW(config_from_yaml_string("bogus:\n  a: 1\n", c, "x.yaml"), InputError);
  EXPECT_THROW(config_from_yaml_string("train: [1, 2\n", c, "x.yaml"), InputError);
  EXPECT_THROW(load_config_file("/nonexistent/config.yaml", c), InputError);
}

TEST(Config, MethodDefaultsFollowTheReferences) {
  Config c;
  c.method.name = "simclr";
  c.train.batch_size = 256;
  resolve_defaults(c);
  EXPECT_DOUBLE_EQ(method_option<double>(c, "temperature"), 0.5);
  EXPECT_DOUBLE_EQ(method_option<double>(c, "base_temperature"), 0.07);  // keeps the T/T_b factor of the reference
  EXPECT_DOUBLE_EQ(c.optim.lr, 0.125);                                   // 0.5 at batch 1024, scaled linearly
  EXPECT_EQ(c.augment.preset, "simclr-cifar");
  Config d;
  d.method.name = "cds";
  d.train.batch_size = 128;
  resolve_defaults(d);
  EXPECT_DOUBLE_EQ(d.optim.lr, 0.1);
  EXPECT_DOUBLE_EQ(method_option<double>(d, "temperature"), 0.07);
  EXPECT_DOUBLE_EQ(d.optim.weight_decay, 5e-4);
  EXPECT_EQ(d.augment.preset, "cds");
  Config e;
  e.method.name = "supcon";
  e.optim.lr = 0.3;  // explicit values are kept
  resolve_defaults(e);
  EXPECT_DOUBLE_EQ(e.optim.lr, 0.3);
}

namespace {
std::string validation_error(const std::function<void(Config&)>& edit) {
  Config c;
  edit(c);
  try {
    resolve_defaults(c);  // an unknown --method is refused here already
    validate(c);
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST(Config, ValidationRejectsBadValuesNamingTheKey) {
  EXPECT_EQ(validation_error([](Config&) {}), "");
  EXPECT_NE(validation_error([](Config& c) { c.optim.lr = -0.1; }).find("--lr"), std::string::npos);
  EXPECT_NE(validation_error([](Config& c) { c.train.batch_size = 0; }).find("--batch-size"), std::string::npos);
  EXPECT_NE(validation_error([](Config& c) { c.train.batch_size = 1; }).find("--batch-size"), std::string::npos);
  EXPECT_NE(validation_error([](Config& c) { c.method.name = "nope"; }).find("--method"), std::string::npos);
  EXPECT_NE(validation_error([](Config& c) { c.data.dataset = "imagenet"; }).find("--dataset"), std::string::npos);
  EXPECT_NE(validation_error([](Config& c) { method_option<double>(c, "temperature") = 0; }).find("--temperature"),
            std::string::npos);
  EXPECT_NE(validation_error([](Config& c) {
              method_option<double>(c, "labeled_fraction") = 1.5;
            }).find("--labeled-fraction"),
            std::string::npos);
  EXPECT_NE(validation_error([](Config& c) {
              c.method.name = "moco";
              c.train.batch_size = 96;
              method_option<int64_t>(c, "queue_size") = 1000;
            }).find("--queue-size"),
            std::string::npos);
  EXPECT_NE(validation_error([](Config& c) {
              method_option<std::vector<double>>(c, "weights") = {1, 1};
            }).find("--cds-weights"),
            std::string::npos);
  EXPECT_NE(validation_error([](Config& c) { c.augment.preset = "fancy"; }).find("--augment"), std::string::npos);
  // Two-view methods name the flag instead of failing inside the step; multi-crop is SupCon/SimCLR's.
  EXPECT_NE(validation_error([](Config& c) {
              c.method.name = "moco";
              c.augment.views = 3;
            }).find("--views"),
            std::string::npos);
  EXPECT_NE(validation_error([](Config& c) {
              c.method.name = "byol";
              c.augment.multi_crop = "2x32,4x16";
            }).find("--multi-crop"),
            std::string::npos);
  EXPECT_NE(validation_error([](Config& c) {
              c.method.name = "simclr";
              c.augment.multi_crop = "1x32";
            }).find("--multi-crop"),
            std::string::npos);
  EXPECT_EQ(validation_error([](Config& c) {
              c.method.name = "simclr";
              c.augment.multi_crop = "2x32,4x16";
            }),
            "");
  // CE with one image per batch is fine; contrastive methods are not.
  EXPECT_EQ(validation_error([](Config& c) {
              c.method.name = "ce";
              c.train.batch_size = 1;
            }),
            "");
}

// Automatic resume compares a run's saved config with the new command's: the first differing key is named,
// the keys a resume may change are not compared, and a value that went through the checkpoint's YAML still
// equals the one it came from.
TEST(Config, FirstDifferenceNamesTheKeyAndSkipsTheResumableOnes) {
  Config saved;
  saved.optim.lr = 0.1 / 3;  // not exactly representable in few digits
  Config now = saved;
  EXPECT_EQ(first_config_difference(saved, now, resume_mutable_keys(), "the run", "this command"), "");
  now.train.epochs = 9;
  now.train.threads = 1;
  now.train.out = "elsewhere";
  now.train.checkpoint_every_steps = 5;
  now.train.keep_checkpoints = 2;
  now.train.no_auto_resume = true;
  now.dist.timeout = 30;
  EXPECT_EQ(first_config_difference(saved, now, resume_mutable_keys(), "the run", "this command"), "");
  now.optim.lr = 0.05;
  now.train.seed = 4;  // later in the table than --lr
  EXPECT_EQ(first_config_difference(saved, now, resume_mutable_keys(), "the run", "this command"),
            "--lr (0.0333333 in the run, 0.05 in this command)");
  now.optim.lr = std::nextafter(saved.optim.lr, 1.0);  // alike in six digits: shown in full
  const std::string close = first_config_difference(saved, now, resume_mutable_keys(), "a", "b");
  EXPECT_EQ(close.rfind("--lr (0.0333333333333333", 0), 0u) << close;
  now.optim.lr = saved.optim.lr;
  EXPECT_EQ(first_config_difference(saved, now, resume_mutable_keys(), "a", "b"), "--seed (0 in a, 4 in b)");
  now.train.seed = 0;
  method_option<std::vector<double>>(now, "weights") = {1, 1, 1, 0};
  EXPECT_EQ(first_config_difference(saved, now, resume_mutable_keys(), "a", "b"),
            "--cds-weights (1,1,1,1 in a, 1,1,1,0 in b)");
  // Through a checkpoint's YAML and back.
  Config reloaded;
  config_from_yaml_string(config_to_yaml(saved), reloaded, "ckpt");
  EXPECT_EQ(first_config_difference(reloaded, saved, {}, "a", "b"), "");
}

TEST(Config, CopyKeysTakesOnlyTheNamedKeys) {
  Config from, to;
  from.train.epochs = 12;
  from.train.threads = 3;
  from.optim.lr = 0.7;
  copy_config_keys(from, to, resume_mutable_keys());
  EXPECT_EQ(to.train.epochs, 12);
  EXPECT_EQ(to.train.threads, 3);
  EXPECT_EQ(to.optim.lr, Config().optim.lr);
}

TEST(Config, CheckpointCadenceIsValidated) {
  EXPECT_NE(
      validation_error([](Config& c) { c.train.checkpoint_every_steps = -1; }).find("--checkpoint-every-steps"),
      std::string::npos);
  EXPECT_NE(validation_error([](Config& c) {
              c.train.checkpoint_every_minutes = -2;
            }).find("--checkpoint-every-minutes"),
            std::string::npos);
  EXPECT_NE(validation_error([](Config& c) { c.train.keep_checkpoints = -1; }).find("--keep-checkpoints"),
            std::string::npos);
}
