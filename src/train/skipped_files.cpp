// The record of unreadable data files in a run directory (skipped_files.txt).
#include "contrastive/common.h"
#include "contrastive/data.h"
#include "contrastive/trainer.h"

namespace contrastive {

void SkippedFilesCallback::on_epoch_end(Trainer& trainer, EpochRecord& record) {
  update(trainer);
  if (written_ > 0) record.counts["skipped_files"] = static_cast<int64_t>(written_);
}

void SkippedFilesCallback::update(Trainer& trainer) {
  std::vector<std::string> lines = train_->skipped_files();
  if (held_out_) {
    for (auto& l : held_out_->skipped_files()) lines.push_back("(held-out) " + l);
  }
  if (lines.size() <= written_) return;
  written_ = lines.size();
  std::string text;
  for (const auto& l : lines) text += l + "\n";
  if (RunDirectory* dir = trainer.run_directory()) {
    dir->write_file("skipped_files.txt", text);
    log_warn(std::to_string(lines.size()) + " unreadable data file" + (lines.size() == 1 ? "" : "s") +
             " skipped so far (listed in " + dir->path() + "/skipped_files.txt)");
  }
}

}  // namespace contrastive
