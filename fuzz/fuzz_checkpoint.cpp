// Checkpoint reader: the input is a whole checkpoint file (magic, version, size, checksum, payload), as
// read_checkpoint sees it. Random payloads almost never match the FNV-1a checksum, so this target covers the
// header checks that stand between a torn or corrupt file and LibTorch; fuzz_checkpoint_payload fuzzes the
// LibTorch archive loader behind them.
#include <string>

#include "fuzz_util.h"
#include "io/checkpoint_bytes.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string file(reinterpret_cast<const char*>(data), size);
  contrastive::fuzz::documented_errors_only([&] {
    torch::serialize::InputArchive archive;
    contrastive::detail::read_checkpoint_bytes(file, "fuzz.ckpt", archive);
  });
  return 0;
}
