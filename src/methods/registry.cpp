// The method registry (include/contrastive/registry.h, docs/adding-a-method.md): the table, the process' instance
// and register_method for methods an application adds.
#include "contrastive/registry.h"

#include <stdexcept>

#include "contrastive/common.h"

namespace contrastive {

void MethodOptionsMap::set(const std::string& name, std::unique_ptr<MethodOptionsBase> options) {
  for (auto& item : items_) {
    if (item.first == name) {
      item.second = std::move(options);
      return;
    }
  }
  items_.emplace_back(name, std::move(options));
}

MethodOptionsBase* MethodOptionsMap::find(const std::string& name) const {
  for (const auto& item : items_)
    if (item.first == name) return item.second.get();
  return nullptr;
}

MethodConfig::MethodConfig() {
  for (const auto& info : method_registry().all())
    if (info.options) options.set(info.name, info.options());
}

void MethodRegistry::add(MethodInfo info) {
  if (info.name.empty()) throw std::logic_error("method registry: a method without a name");
  if (find(info.name)) throw std::logic_error("method registry: '" + info.name + "' registered twice");
  if (!info.make) throw std::logic_error("method registry: '" + info.name + "' has no factory");
  if (info.min_views < 1 || info.max_views < info.min_views)
    throw std::logic_error("method registry: '" + info.name + "' has a bad views range");
  if (info.options) {
    auto mine = info.options();
    for (const auto& other : methods_) {
      if (!other.options) continue;
      auto theirs = other.options();
      for (const auto& a : mine->keys())
        for (const auto& b : theirs->keys())
          if (a.flag == b.flag && a.target.index() != b.target.index())
            throw std::logic_error("method registry: --" + a.flag + " of '" + info.name +
                                   "' has another type than " + "in '" + other.name + "'");
    }
  }
  methods_.push_back(std::move(info));
}

const MethodInfo* MethodRegistry::find(const std::string& name) const {
  for (const auto& m : methods_)
    if (m.name == name) return &m;
  return nullptr;
}

const MethodInfo& MethodRegistry::at(const std::string& name) const {
  if (const auto* m = find(name)) return *m;
  throw InputError("invalid value for --method: '" + name + "' (expected one of: " + names_joined(", ") + ")");
}

std::vector<std::string> MethodRegistry::names() const {
  std::vector<std::string> out;
  for (const auto& m : methods_) out.push_back(m.name);
  return out;
}

std::string MethodRegistry::names_joined(const std::string& separator) const {
  std::string out;
  for (const auto& m : methods_) out += (out.empty() ? "" : separator) + m.name;
  return out;
}

namespace {

// The process' registry: the built-in methods, then those an application registered.
MethodRegistry& registry_instance() {
  static MethodRegistry registry = [] {
    MethodRegistry r;
    register_builtin_methods(r);
    return r;
  }();
  return registry;
}

}  // namespace

const MethodRegistry& method_registry() { return registry_instance(); }

void register_method(MethodInfo info) { registry_instance().add(std::move(info)); }

const MethodInfo& method_info(const Config& config) { return method_registry().at(config.method.name); }

void check_option(bool ok, const std::string& flag, const std::string& what) {
  if (!ok) throw InputError("invalid value for --" + flag + ": " + what);
}

}  // namespace contrastive
