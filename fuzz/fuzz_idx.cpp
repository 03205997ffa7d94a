// IDX reader: the input is the content of an IDX file, decoded both as images and as labels (one of the
// two stops at the magic; seeds of each kind let the fuzzer get past it).
#include "data/parse.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace cd = contrastive::detail;
  contrastive::fuzz::documented_errors_only([&] { cd::parse_idx_images(data, size, "fuzz.idx"); });
  contrastive::fuzz::documented_errors_only([&] { cd::parse_idx_labels(data, size, "fuzz.idx"); });
  return 0;
}
