// Shared by the libFuzzer targets: the documented error path is fine, anything else is a bug.
#pragma once

#include <cstddef>
#include <cstdint>

#include "contrastive/common.h"

namespace contrastive::fuzz {

// Runs `body` and swallows InputError and RunError, the errors the library documents for bad input.
// Any other exception escapes and libFuzzer reports it (uncaught exception -> abort -> crash input saved),
// as it does crashes and sanitizer reports.
template <typename Body>
int documented_errors_only(Body&& body) {
  try {
    body();
  } catch (const InputError&) {
  } catch (const RunError&) {
  }
  return 0;
}

}  // namespace contrastive::fuzz
