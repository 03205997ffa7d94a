// `contrastive methods`: the registered methods (registry.h), as a table or JSON — what --method accepts, with
// each method's needs, default recipe and paper. docs/methods.md has their formulas.
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "commands.h"
#include "contrastive/config.h"
#include "contrastive/registry.h"

namespace contrastive::cli {
namespace {

std::string recipe(const MethodInfo& m) {
  std::ostringstream ss;
  ss << m.defaults.optimizer << " lr " << m.defaults.lr;
  if (m.defaults.lr_batch > 0) ss << " at batch " << m.defaults.lr_batch;
  ss << ", wd " << m.defaults.weight_decay << ", " << m.defaults.augment;
  return ss.str();
}

std::string views(const MethodInfo& m) {
  std::string v = std::to_string(m.min_views);
  if (m.max_views != m.min_views) v += ".." + std::to_string(m.max_views);
  return m.multi_crop ? v + " (multi-crop)" : v;
}

CommandRegistration reg([](CLI::App& app) -> std::function<int()> {
  auto json = std::make_shared<bool>(false);
  auto* cmd =
      app.add_subcommand("methods", "list the training methods (--method), their needs and default recipes");
  cmd->add_flag("--json", *json, "one JSON object per method, options with their defaults included");
  return [json]() {
    for (const auto& m : method_registry().all()) {
      if (*json) {
        nlohmann::json options = nlohmann::json::object();
        auto o = m.options ? m.options() : nullptr;
        if (o)
          for (auto& k : o->keys()) std::visit([&](auto* t) { options[k.name] = *t; }, k.target);
        std::cout << nlohmann::json{{"name", m.name},
                                    {"summary", m.summary},
                                    {"paper", m.paper},
                                    {"uses_labels", m.uses_labels},
                                    {"classifier", m.classifier},
                                    {"views", views(m)},
                                    {"recipe", recipe(m)},
                                    {"options", options}}
                         .dump()
                  << "\n";
      } else {
        std::cout << std::left << std::setw(12) << m.name << m.summary << "\n"
                  << std::setw(12) << ""
                  << "labels: " << (m.uses_labels ? "yes" : "no") << "; views: " << views(m) << "; " << recipe(m)
                  << "\n"
                  << std::setw(12) << "" << m.paper << "\n";
      }
    }
    return 0;
  };
});

}  // namespace
}  // namespace contrastive::cli
