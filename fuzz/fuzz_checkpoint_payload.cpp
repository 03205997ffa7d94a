// Checkpoint payload: the input is a LibTorch archive (a zip), framed with a valid header and checksum and
// read through read_checkpoint_bytes, so that every input reaches the LibTorch archive loader. That loader
// (TorchScript importer and unpickler of LibTorch 1.13) has crashes of its own that this project cannot fix
// (see fuzz/known-crashes/); this target is therefore not in the smoke or nightly defaults.
#include <string>

#include "fuzz_util.h"
#include "io/checkpoint_bytes.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string file =
      contrastive::detail::frame_checkpoint(std::string(reinterpret_cast<const char*>(data), size));
  contrastive::fuzz::documented_errors_only([&] {
    torch::serialize::InputArchive archive;
    contrastive::detail::read_checkpoint_bytes(file, "fuzz.ckpt", archive);
  });
  return 0;
}
