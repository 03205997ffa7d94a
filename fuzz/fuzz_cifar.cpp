// CIFAR reader: the input is the content of one batch file, decoded as CIFAR-10 and as CIFAR-100 (fine and
// coarse labels); the record sizes differ (3073 / 3074 bytes), so seeds of both kinds are in the corpus.
#include <utility>

#include "data/parse.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace cd = contrastive::detail;
  for (const auto& kind : {std::pair{false, false}, std::pair{true, false}, std::pair{true, true}}) {
    contrastive::fuzz::documented_errors_only(
        [&] { cd::parse_cifar_batch(data, size, "fuzz.bin", /*cifar100=*/kind.first, /*coarse=*/kind.second); });
  }
  return 0;
}
