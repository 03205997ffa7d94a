#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "contrastive/common.h"
#include "contrastive/io.h"
#include "io/checkpoint_bytes.h"

namespace contrastive {

namespace {

constexpr char kMagic[8] = {'C', 'T', 'R', 'V', 'C', 'K', 'P', 'T'};
constexpr size_t kHeaderBytes = 8 + 4 + 8 + 8;

uint64_t fnv1a(const char* data, size_t n) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (size_t i = 0; i < n; ++i) {
    h ^= static_cast<unsigned char>(data[i]);
    h *= 0x100000001b3ULL;
  }
  return h;
}

template <typename T>
void put_le(std::string& out, T v) {
  for (size_t i = 0; i < sizeof(T); ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

template <typename T>
T get_le(const std::string& in, size_t offset) {
  T v = 0;
  for (size_t i = 0; i < sizeof(T); ++i)
    v |= static_cast<T>(static_cast<unsigned char>(in[offset + i])) << (8 * i);
  return v;
}

}  // namespace

namespace {

// The system's reason for a failed atomic write; write_file_atomic and write_checkpoint word the RunError.
struct WriteFailure {
  std::string step;    // what failed: "open <tmp>", "write", "rename"
  std::string reason;  // strerror text
};

void write_atomic_or_fail(const std::string& path, const std::string& data) {
  const std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) throw WriteFailure{"open " + tmp, std::strerror(errno)};
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      const std::string why = std::strerror(errno);
      ::close(fd);
      ::unlink(tmp.c_str());
      throw WriteFailure{"write", why};
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    const std::string why = std::strerror(errno);
    ::unlink(tmp.c_str());
    throw WriteFailure{"write", why};
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    ::unlink(tmp.c_str());
    throw WriteFailure{"rename", why};
  }
}

// "the previous <what> is kept" only when there is one: a failed first write leaves nothing behind.
std::string what_is_kept(const std::string& path, const std::string& what) {
  std::error_code ec;
  return std::filesystem::exists(path, ec) ? "the previous " + what + " is kept" : "no " + what + " was written";
}

// LibTorch's messages span lines (source excerpts, backtraces); an error message here is one line.
std::string first_line(const std::string& text) {
  const auto begin = std::min(text.find_first_not_of(" \t\r\n"), text.size());
  const auto end = std::min(text.find_first_of("\r\n", begin), text.size());
  return text.substr(begin, std::min<size_t>(end - begin, 200));
}

}  // namespace

void write_file_atomic(const std::string& path, const std::string& data) {
  try {
    write_atomic_or_fail(path, data);
  } catch (const WriteFailure& f) {
    throw RunError(path + ": " + f.step + " failed (" + f.reason + "); " + what_is_kept(path, "file"));
  }
}

namespace detail {

std::string frame_checkpoint(const std::string& payload) {
  std::string out(kMagic, sizeof(kMagic));
  put_le<uint32_t>(out, kCheckpointVersion);
  put_le<uint64_t>(out, payload.size());
  put_le<uint64_t>(out, fnv1a(payload.data(), payload.size()));
  out += payload;
  return out;
}

void read_checkpoint_bytes(const std::string& file, const std::string& name,
                           torch::serialize::InputArchive& archive) {
  if (file.size() < kHeaderBytes || std::memcmp(file.data(), kMagic, sizeof(kMagic)) != 0)
    throw InputError(name + ": not a contrastive checkpoint (bad magic)");
  const auto version = get_le<uint32_t>(file, 8);
  if (version != kCheckpointVersion)
    throw InputError(name + ": checkpoint format version " + std::to_string(version) +
                     " is not supported (expected " + std::to_string(kCheckpointVersion) + ")");
  const auto size = get_le<uint64_t>(file, 12);
  const auto sum = get_le<uint64_t>(file, 20);
  if (file.size() - kHeaderBytes != size)
    throw InputError(name + ": checkpoint is truncated or torn (" + std::to_string(file.size() - kHeaderBytes) +
                     " of " + std::to_string(size) + " payload bytes)");
  if (fnv1a(file.data() + kHeaderBytes, size) != sum) throw InputError(name + ": checkpoint checksum mismatch");
  std::istringstream payload(file.substr(kHeaderBytes));
  try {
    archive.load_from(payload);
  } catch (const c10::Error& e) {
    throw InputError(name + ": checkpoint payload cannot be read (" + first_line(e.what_without_backtrace()) +
                     ")");
  } catch (const std::exception& e) {
    // LibTorch's TorchScript importer reports a damaged code/ entry with other exception types (found by
    // fuzz/fuzz_checkpoint; e.g. torch::jit::ErrorReport, a std::runtime_error).
    throw InputError(name + ": checkpoint payload cannot be read (" + first_line(e.what()) + ")");
  }
}

}  // namespace detail

void write_checkpoint(const std::string& path, torch::serialize::OutputArchive& archive) {
  write_checkpoint(std::vector<std::string>{path}, archive);
}

void write_checkpoint(const std::vector<std::string>& paths, torch::serialize::OutputArchive& archive) {
  std::ostringstream payload;
  archive.save_to(payload);
  const std::string framed = detail::frame_checkpoint(payload.str());
  for (const auto& path : paths) {
    try {
      write_atomic_or_fail(path, framed);
    } catch (const WriteFailure& f) {
      // One line that a user with a full disk understands without knowing about temp files.
      throw RunError("checkpoint " + path + " could not be written (" + f.step + " failed: " + f.reason + "); " +
                     what_is_kept(path, "checkpoint"));
    }
  }
}

void read_checkpoint(const std::string& path, torch::serialize::InputArchive& archive) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path + ": cannot open checkpoint");
  std::stringstream ss;
  ss << in.rdbuf();
  detail::read_checkpoint_bytes(ss.str(), path, archive);
}

void append_jsonl(const std::string& path, const nlohmann::json& record) {
  std::ofstream out(path, std::ios::app);
  if (!out) throw RunError(path + ": cannot append metrics");
  out << record.dump() << "\n";
  if (!out) throw RunError(path + ": cannot append metrics");
}

std::string default_run_dir(const std::string& method, const std::string& dataset) {
  std::time_t t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  char stamp[32];
  std::strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", std::localtime(&t));
  return "runs/" + method + "-" + dataset + "-" + stamp;
}

void archive_put(torch::serialize::OutputArchive& a, const std::string& key, int64_t v) {
  a.write(key, c10::IValue(v));
}
void archive_put(torch::serialize::OutputArchive& a, const std::string& key, double v) {
  a.write(key, c10::IValue(v));
}
void archive_put(torch::serialize::OutputArchive& a, const std::string& key, const std::string& v) {
  a.write(key, c10::IValue(v));
}

namespace {
c10::IValue archive_get(torch::serialize::InputArchive& a, const std::string& key) {
  c10::IValue v;
  if (!a.try_read(key, v)) throw InputError("checkpoint lacks '" + key + "'");
  return v;
}
}  // namespace

int64_t archive_get_int(torch::serialize::InputArchive& a, const std::string& key) {
  auto v = archive_get(a, key);
  if (!v.isInt()) throw InputError("checkpoint entry '" + key + "' is not an integer");
  return v.toInt();
}
double archive_get_double(torch::serialize::InputArchive& a, const std::string& key) {
  auto v = archive_get(a, key);
  if (!v.isDouble()) throw InputError("checkpoint entry '" + key + "' is not a number");
  return v.toDouble();
}
std::string archive_get_string(torch::serialize::InputArchive& a, const std::string& key) {
  auto v = archive_get(a, key);
  if (!v.isString()) throw InputError("checkpoint entry '" + key + "' is not a string");
  return v.toStringRef();
}

Checkpoint Checkpoint::read(const std::string& path) {
  Checkpoint c;
  c.path_ = path;
  c.archive_ = std::make_shared<torch::serialize::InputArchive>();
  read_checkpoint(path, *c.archive_);
  auto& a = *c.archive_;
  try {
    config_from_yaml_string(archive_get_string(a, "config"), c.config_, path);
    c.position_.epoch = archive_get_int(a, "epoch");
    c.position_.step = archive_get_int(a, "step");
    c.position_.global_step = archive_get_int(a, "global_step");
    c.position_.best_metric = archive_get_double(a, "best_metric");
    c.position_.nan_skips = archive_get_int(a, "nan_skips");
  } catch (const InputError& e) {
    const std::string what = e.what();
    if (what.rfind(path, 0) == 0) throw;  // the config parser names the file already
    throw InputError(path + ": " + what);
  }
  c10::IValue world;
  if (a.try_read("world_size", world) && world.isInt()) c.world_size_ = world.toInt();
  return c;
}

void Checkpoint::load_model(torch::nn::Module& module, const std::string& what) const {
  torch::serialize::InputArchive model;
  if (!archive_->try_read("model", model)) throw InputError(path_ + ": checkpoint lacks the model state");
  // Module::load replaces a tensor of another shape instead of refusing it: check the shapes afterwards.
  std::vector<std::pair<std::string, std::vector<int64_t>>> shapes;
  for (const auto& p : module.named_parameters()) shapes.emplace_back(p.key(), p.value().sizes().vec());
  for (const auto& b : module.named_buffers()) shapes.emplace_back(b.key(), b.value().sizes().vec());
  try {
    module.load(model);
  } catch (const c10::Error&) {
    throw InputError(path_ + ": " + what);
  }
  auto params = module.named_parameters();
  auto buffers = module.named_buffers();
  for (const auto& [name, want] : shapes) {
    const torch::Tensor* t = params.find(name);
    if (!t) t = buffers.find(name);
    if (t && t->sizes().vec() != want) {
      std::ostringstream got, expected;
      got << t->sizes();
      expected << c10::IntArrayRef(want);
      throw InputError(path_ + ": " + what + " ('" + name + "' is " + got.str() + " in the checkpoint, " +
                       expected.str() + " in the model)");
    }
  }
}

void Checkpoint::load_optimizer(torch::optim::Optimizer& optimizer) const {
  torch::serialize::InputArchive optim;
  if (!archive_->try_read("optimizer", optim)) throw InputError(path_ + ": checkpoint lacks the optimizer state");
  try {
    optimizer.load(optim);
  } catch (const c10::Error&) {
    throw InputError(path_ + ": optimizer state does not match this method and model");
  }
}

torch::Tensor Checkpoint::boxes() const {
  torch::Tensor boxes;
  if (!archive_->try_read("boxes", boxes, /*is_buffer=*/true)) return {};
  return boxes;
}

void write_run_checkpoint(const std::vector<std::string>& paths, const Config& config, torch::nn::Module& model,
                          torch::optim::Optimizer& optimizer, const TrainPosition& pos, int64_t world_size,
                          const torch::Tensor& boxes) {
  torch::serialize::OutputArchive archive, model_state, optim;
  model.save(model_state);
  optimizer.save(optim);
  archive.write("model", model_state);
  archive.write("optimizer", optim);
  archive_put(archive, "config", config_to_yaml(config));
  archive_put(archive, "epoch", pos.epoch);
  archive_put(archive, "step", pos.step);
  archive_put(archive, "global_step", pos.global_step);
  archive_put(archive, "best_metric", pos.best_metric);
  archive_put(archive, "nan_skips", pos.nan_skips);
  archive_put(archive, "world_size", world_size);
  if (boxes.defined()) archive.write("boxes", boxes, /*is_buffer=*/true);
  write_checkpoint(paths, archive);
}

}  // namespace contrastive
