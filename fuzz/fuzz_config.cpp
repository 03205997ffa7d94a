// YAML config loader: the input is a config file's text; it is loaded over the defaults, resolved and
// validated, as `contrastive train --config` does. A config that validates must also survive the round trip
// through config_to_yaml (what a run writes to config.yaml and --resume reads back) unchanged.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "contrastive/config.h"
#include "contrastive/resolve.h"
#include "fuzz_util.h"

namespace {

[[noreturn]] void fail(const char* what, const std::string& yaml) {
  std::fprintf(stderr, "config round trip: %s\n%s", what, yaml.c_str());
  std::abort();
}

// The written YAML of a valid config reloads without error and writes the same text again.
void check_round_trip(const contrastive::Config& config) {
  const std::string written = contrastive::config_to_yaml(config);
  contrastive::Config reloaded;
  try {
    contrastive::config_from_yaml_string(written, reloaded, "config.yaml");
  } catch (const std::exception& e) {
    fail(e.what(), written);
  }
  if (contrastive::config_to_yaml(reloaded) != written) fail("reloaded config differs", written);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  contrastive::fuzz::documented_errors_only([&] {
    contrastive::Config config;
    contrastive::config_from_yaml_string(text, config, "fuzz.yaml");
    contrastive::resolve_defaults(config);
    contrastive::validate(config);
    check_round_trip(config);
  });
  return 0;
}
