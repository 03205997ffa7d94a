// The method registry (docs/adding-a-method.md). Each method registers, from its own file: its name, its
// options with their config keys and help, what it needs (labels, views, batch), its defaults for the shared
// settings (learning rate, weight decay, optimizer, augmentation), its validation and its factory. The config,
// the CLI, --help and the docs listing read this table; the trainer, config and CLI never name a method.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "contrastive/config.h"

namespace contrastive {

class MethodImpl;
struct MethodSpec;

// The shared settings a method fills in when the user left them at their placeholder (config.h).
struct MethodDefaults {
  double lr = 0.1;       // the reference's learning rate ...
  int64_t lr_batch = 0;  // ... at this global batch, scaled linearly to the run's (0: used as it is)
  double weight_decay = 1e-4;
  std::string optimizer = "sgd";                  // sgd | lars | adam
  double lars_trust = 0.001;                      // LARS trust coefficient
  double warmup_epochs = 0;                       // linear warm-up of the learning rate
  std::vector<double> adam_betas = {0.9, 0.999};  // when the optimizer is Adam
  std::string augment = "simclr-cifar";           // augmentation preset (augment.h)
  int64_t views = 2;
  bool zero_init_residual = false;
};

struct MethodInfo {
  std::string name;          // --method value and the YAML section of its options
  std::string summary;       // one line, for --help and docs
  std::string paper;         // where it comes from
  bool uses_labels = false;  // reads training labels (supervised or semi-supervised)
  bool classifier = false;   // trains a classifier: test top-1 is reported, the kNN monitor is off by default
  int64_t min_views = 2;     // views per image it accepts
  int64_t max_views = 2;
  bool multi_crop = false;     // accepts --multi-crop
  int64_t min_batch = 2;       // images per batch it needs
  bool full_batches = false;   // every batch must be full (the loader drops the last short one)
  std::string arch;            // non-empty: the only backbone it trains, offered as an --arch value
  bool bf16_measured = false;  // bf16 accuracy measured against fp32 (--precision auto may then pick bf16)
  MethodDefaults defaults;
  std::function<std::unique_ptr<MethodOptionsBase>()> options;  // its options at their defaults
  // Checks of its options and of the shared settings it depends on; throw InputError (check_option helps).
  std::function<void(const Config&, int64_t world_size)> validate;
  std::function<std::shared_ptr<MethodImpl>(const MethodSpec&)> make;
};

class MethodRegistry {
 public:
  // A name given twice, or a flag that another method already declares with another value type ->
  // std::logic_error (methods may share a flag, e.g. --temperature, only with one type).
  void add(MethodInfo info);
  const MethodInfo* find(const std::string& name) const;
  // The method of that name; unknown -> InputError listing the registered ones.
  const MethodInfo& at(const std::string& name) const;
  const std::vector<MethodInfo>& all() const { return methods_; }
  std::vector<std::string> names() const;
  std::string names_joined(const std::string& separator = " | ") const;

 private:
  std::vector<MethodInfo> methods_;
};

// The process' registry, filled on first use by register_builtin_methods (the list is
// src/methods/builtin_methods.inc, one line per method).
const MethodRegistry& method_registry();
void register_builtin_methods(MethodRegistry& registry);

// Adds a method of the application's own (examples/dcl): call it at the start of main, before any Config is
// built (a Config holds the options of the methods registered when it was made). From then on the method is a
// --method value, its options are flags and a YAML section, and `contrastive methods` lists it, exactly as a
// built-in one. A name already registered, or a flag another method declares with another type ->
// std::logic_error.
void register_method(MethodInfo info);

// The registered info of the config's method (InputError when unknown).
const MethodInfo& method_info(const Config& config);

// One clear line for a bad option value: "invalid value for --flag: what".
void check_option(bool ok, const std::string& flag, const std::string& what);

// Makes MethodInfo::options for an options struct O and its key binder.
template <typename O>
std::function<std::unique_ptr<MethodOptionsBase>()> options_factory(O defaults,
                                                                    typename MethodOptionsOf<O>::Binder binder) {
  return [defaults, binder] { return std::make_unique<MethodOptionsOf<O>>(defaults, binder); };
}

}  // namespace contrastive
