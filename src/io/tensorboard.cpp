// TensorBoard event files and projector files (include/contrastive/tensorboard.h).
#include "contrastive/tensorboard.h"

#include <torch/torch.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "contrastive/common.h"
#include "contrastive/io.h"

#ifdef CONTRASTIVE_WITH_TENSORBOARD
#include <google/protobuf/text_format.h>

#include <boost/crc.hpp>

#include "tensorboard.pb.h"
#endif

namespace contrastive {

namespace fs = std::filesystem;

#ifndef CONTRASTIVE_WITH_TENSORBOARD

bool tensorboard_available() { return false; }

struct EventWriter::Impl {};
EventWriter::EventWriter(const std::string&) {
  throw InputError(
      "this build has no protobuf; install libprotobuf-dev, protobuf-compiler and libboost-dev "
      "(Debian) and rebuild, or pass --tensorboard off");
}
EventWriter::~EventWriter() = default;
void EventWriter::scalars(const std::map<std::string, double>&, int64_t) {}
const std::string& EventWriter::path() const {
  static const std::string none;
  return none;
}
void write_projector(const std::string&, const torch::Tensor&, const std::vector<std::string>&,
                     const torch::Tensor&, const std::vector<std::string>&) {
  throw InputError(
      "--projector: this build has no protobuf; install libprotobuf-dev, protobuf-compiler and libboost-dev "
      "(Debian) and rebuild");
}

#else

bool tensorboard_available() { return true; }

namespace {

namespace tb = contrastive::tensorboard;

// TFRecord's checksum: CRC32C (Castagnoli), rotated right by 15 bits and offset by a constant.
uint32_t masked_crc32c(const void* data, size_t n) {
  boost::crc_optimal<32, 0x1EDC6F41, 0xFFFFFFFF, 0xFFFFFFFF, true, true> crc;
  crc.process_bytes(data, n);
  const uint32_t c = crc.checksum();
  return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

double unix_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string host_name() {
  char buf[256] = {0};
  if (gethostname(buf, sizeof(buf) - 1) != 0) return "localhost";
  return buf;
}

}  // namespace

struct EventWriter::Impl {
  std::string path;
  std::ofstream out;

  void write(const tb::Event& event) {
    std::string data;
    event.SerializeToString(&data);
    const uint64_t length = data.size();  // little-endian on the platforms LibTorch supports
    const uint32_t length_crc = masked_crc32c(&length, sizeof(length));
    const uint32_t data_crc = masked_crc32c(data.data(), data.size());
    out.write(reinterpret_cast<const char*>(&length), sizeof(length));
    out.write(reinterpret_cast<const char*>(&length_crc), sizeof(length_crc));
    out.write(data.data(), static_cast<std::streamsize>(data.size()));
    out.write(reinterpret_cast<const char*>(&data_crc), sizeof(data_crc));
    out.flush();
    if (!out) throw RunError(path + ": cannot write the TensorBoard event file");
  }
};

EventWriter::EventWriter(const std::string& dir) : impl_(std::make_unique<Impl>()) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  const double now = unix_seconds();
  impl_->path = (fs::path(dir) / ("events.out.tfevents." + std::to_string(static_cast<int64_t>(now)) + "." +
                                  host_name() + "." + std::to_string(getpid())))
                    .string();
  impl_->out.open(impl_->path, std::ios::binary | std::ios::app);
  if (!impl_->out) throw RunError(impl_->path + ": cannot create the TensorBoard event file");
  tb::Event first;  // every event file starts with its version
  first.set_wall_time(now);
  first.set_file_version("brain.Event:2");
  impl_->write(first);
}

EventWriter::~EventWriter() = default;

void EventWriter::scalars(const std::map<std::string, double>& values, int64_t step) {
  tb::Event event;
  event.set_wall_time(unix_seconds());
  event.set_step(step);
  auto* summary = event.mutable_summary();
  for (const auto& [tag, v] : values) {
    auto* value = summary->add_value();
    value->set_tag(tag);
    value->set_simple_value(static_cast<float>(v));
  }
  impl_->write(event);
}

const std::string& EventWriter::path() const { return impl_->path; }

void write_projector(const std::string& dir, const torch::Tensor& features, const std::vector<std::string>& names,
                     const torch::Tensor& labels, const std::vector<std::string>& class_names) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw InputError("--projector " + dir + ": cannot create the directory (" + ec.message() + ")");
  auto f = features.detach().to(torch::kCPU, torch::kFloat).contiguous();
  const int64_t n = f.size(0), d = f.size(1);
  const float* p = f.data_ptr<float>();
  std::ostringstream tensors;
  tensors.precision(7);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < d; ++j) tensors << (j ? "\t" : "") << p[i * d + j];
    tensors << '\n';
  }
  write_file_atomic((fs::path(dir) / "tensors.tsv").string(), tensors.str());

  // Names never hold tabs or newlines in a TSV cell; labels by class name when known.
  auto cell = [](std::string s) {
    for (char& c : s)
      if (c == '\t' || c == '\n' || c == '\r') c = ' ';
    return s;
  };
  std::ostringstream meta;
  const bool labelled = labels.defined() && labels.numel() == n;
  auto lab = labelled ? labels.to(torch::kCPU, torch::kLong).contiguous() : torch::Tensor();
  if (labelled) meta << "name\tlabel\n";  // a header row only with two or more columns (TensorBoard's rule)
  for (int64_t i = 0; i < n; ++i) {
    meta << cell(i < static_cast<int64_t>(names.size()) ? names[i] : std::to_string(i));
    if (labelled) {
      const int64_t l = lab.data_ptr<int64_t>()[i];
      meta << '\t'
           << (l >= 0 && l < static_cast<int64_t>(class_names.size()) ? cell(class_names[l]) : std::to_string(l));
    }
    meta << '\n';
  }
  write_file_atomic((fs::path(dir) / "metadata.tsv").string(), meta.str());

  tb::ProjectorConfig config;
  auto* e = config.add_embeddings();
  e->set_tensor_name("features");
  e->set_tensor_path("tensors.tsv");
  e->set_metadata_path("metadata.tsv");
  e->add_tensor_shape(static_cast<uint32_t>(n));
  e->add_tensor_shape(static_cast<uint32_t>(d));
  std::string text;
  google::protobuf::TextFormat::PrintToString(config, &text);
  write_file_atomic((fs::path(dir) / "projector_config.pbtxt").string(), text);
}

#endif

}  // namespace contrastive
