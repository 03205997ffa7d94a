// What a run writes: RunDirectory (lock, config.yaml, metrics.jsonl, train.log, checkpoint names, the
// auto-resume decision) and the EpochRecord it stores (trainer.h).
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <sstream>

#include "contrastive/common.h"
#include "contrastive/config.h"
#include "contrastive/io.h"
#include "contrastive/train.h"
#include "contrastive/trainer.h"
#include "train/train_internal.h"

namespace fs = std::filesystem;

namespace contrastive {

namespace detail {

std::string world_size_mismatch(const std::string& path, int64_t saved, int64_t world) {
  if (saved == world) return "";
  return path + ": written by a run of " + std::to_string(saved) + " process(es), this one has " +
         std::to_string(world) + "; resume it with " + std::to_string(saved) +
         " (the data order and the batch per process depend on it)";
}

}  // namespace detail

using detail::world_size_mismatch;

namespace {

// Rewrites metrics.jsonl keeping only the records of epochs <= `epochs` (a run killed between writing its metrics
// and its checkpoint repeats that epoch on resume; a fresh run starts with none).
void keep_metrics_up_to(const std::string& path, int64_t epochs) {
  if (!fs::exists(path)) return;
  std::ifstream in(path);
  std::string kept, line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    auto rec = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!rec.is_discarded() && rec.contains("epoch") && rec["epoch"].get<int64_t>() <= epochs) kept += line + "\n";
  }
  write_file_atomic(path, kept);
}

}  // namespace

// ---- EpochRecord ----

double EpochRecord::value(const std::string& key, double fallback) const {
  auto it = values.find(key);
  return it == values.end() ? fallback : it->second;
}

nlohmann::json EpochRecord::to_json() const {
  nlohmann::json rec;
  rec["epoch"] = epoch;
  for (const auto& [k, v] : values) rec[k] = v;
  for (const auto& [k, v] : counts) rec[k] = v;
  for (const auto& [k, v] : flags) rec[k] = v;
  for (const auto& [k, v] : terms) rec["terms"][k] = v;
  return rec;
}

// ---- RunDirectory ----

RunDirectory::~RunDirectory() {
  if (log_attached_) detach_log_file();
  if (lock_fd_ >= 0) ::close(lock_fd_);  // releases the flock; the file stays (removing it would race a new taker)
}

std::string RunDirectory::try_lock() {
  if (!writer_ || lock_fd_ >= 0) return "";
  std::error_code ec;
  fs::create_directories(path_, ec);
  const std::string lock_path = path_ + "/.lock";
  const int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return "cannot create " + lock_path + ": " + std::strerror(errno);
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    if (err != EWOULDBLOCK) {
      ::close(fd);
      return "cannot lock " + lock_path + ": " + std::strerror(err);
    }
    char buf[32] = {0};  // the holder wrote its pid and a newline
    const auto n = ::pread(fd, buf, sizeof(buf) - 1, 0);
    ::close(fd);
    std::string holder = n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
    holder.erase(std::remove_if(holder.begin(), holder.end(), [](char c) { return c < '0' || c > '9'; }),
                 holder.end());
    return "run directory " + path_ + " is in use by another training" +
           (holder.empty() ? std::string() : " (pid " + holder + ")") +
           "; wait for it to end, or choose another --out";
  }
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size()))
    log_warn("could not write the pid into " + lock_path + " (the lock is held all the same)");
  lock_fd_ = fd;
  return "";
}

std::string RunDirectory::step_checkpoint(int64_t global_step) const {
  std::ostringstream name;
  name << "step-" << std::setw(6) << std::setfill('0') << global_step << ".ckpt";
  return path_ + "/" + name.str();
}

std::vector<std::string> RunDirectory::step_checkpoints() const {
  std::vector<std::pair<int64_t, std::string>> found;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(path_, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.size() <= 10 || name.rfind("step-", 0) != 0 || name.substr(name.size() - 5) != ".ckpt") continue;
    const std::string digits = name.substr(5, name.size() - 10);
    if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos || digits.size() > 18)
      continue;
    found.emplace_back(std::stoll(digits), entry.path().string());
  }
  std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  std::vector<std::string> out;
  for (auto& f : found) out.push_back(f.second);
  return out;
}

void RunDirectory::prune_step_checkpoints(int64_t keep) const {
  if (!writer_) return;
  const auto all = step_checkpoints();
  for (size_t i = static_cast<size_t>(keep); i < all.size(); ++i) {
    std::error_code ec;
    fs::remove(all[i], ec);
    if (ec) log_warn("could not delete the old step checkpoint " + all[i] + ": " + ec.message());
  }
}

void RunDirectory::open(const Config& config, int64_t epochs_kept) {
  if (!writer_) return;
  fs::create_directories(path_);
  keep_metrics_up_to(path_ + "/metrics.jsonl", epochs_kept);  // drop records of epochs the checkpoint lacks
  if (!log_attached_) {
    attach_log_file(path_ + "/train.log");
    log_attached_ = true;
  }
  write_file_atomic(path_ + "/config.yaml", config_to_yaml(config));
}

void RunDirectory::append_metrics(const EpochRecord& record) const {
  if (writer_) append_jsonl(path_ + "/metrics.jsonl", record.to_json());
}

void RunDirectory::write_file(const std::string& name, const std::string& text) const {
  if (writer_) write_file_atomic(path_ + "/" + name, text);
}

std::string RunDirectory::resume_decision(const Config& config, int64_t world,
                                          std::vector<std::string>& notes) const {
  std::vector<std::string> candidates;
  if (fs::exists(last_checkpoint())) candidates.push_back(last_checkpoint());
  for (auto& p : step_checkpoints()) candidates.push_back(p);
  if (candidates.empty()) return "fresh";
  const std::string again = "continue it with --resume " + path_ + " or choose another --out";
  if (config.train.no_auto_resume)
    return "error:" + path_ + " already holds a run (" + fs::path(candidates[0]).filename().string() + "); " +
           again + " (--no-auto-resume is on)";
  std::string first_failure;
  for (const auto& path : candidates) {
    try {
      const Checkpoint ckpt = Checkpoint::read(path);
      const std::string mismatch = world_size_mismatch(path, ckpt.world_size(), world);
      if (!mismatch.empty()) return "error:" + mismatch + ", or choose another --out";
      // A folder's measured normalisation is part of the stored run, not of the command that continues it.
      Config asked = config;
      adopt_settled_data(ckpt.config(), asked);
      const std::string diff =
          first_config_difference(ckpt.config(), asked, resume_mutable_keys(), path, "this command");
      if (!diff.empty())
        return "error:" + path_ + " holds a run with another configuration: " + diff + "; " + again;
      if (ckpt.position().epoch >= config.train.epochs) return "complete:" + path;
      return "resume:" + path;
    } catch (const InputError& e) {  // torn, corrupted or foreign: try the next older one
      notes.push_back(std::string(e.what()) + "; passed over for auto-resume");
      if (first_failure.empty()) first_failure = e.what();
    }
  }
  return "error:" + first_failure + " (no readable checkpoint in " + path_ + "); choose another --out";
}

}  // namespace contrastive
