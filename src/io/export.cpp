#include "contrastive/export.h"

#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/jit/serialization/export.h>
#include <torch/csrc/jit/serialization/pickler.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "contrastive/common.h"
#include "contrastive/io.h"

namespace contrastive {

namespace {

bool is_classifier(const std::string& name) { return name.rfind("fc.", 0) == 0; }

// Parameters and buffers module by module (each module's parameters, then its buffers), which is the order
// PyTorch's state_dict() uses, so a diff of the two key lists reads naturally.
NamedTensors live_tensors(torch::nn::Module& backbone) {
  NamedTensors out;
  for (const auto& item : backbone.named_modules("", /*include_self=*/true)) {
    const std::string prefix = item.key().empty() ? "" : item.key() + ".";
    for (const auto& p : item.value()->named_parameters(/*recurse=*/false))
      if (p.value().defined()) out.emplace_back(prefix + p.key(), p.value());
    for (const auto& b : item.value()->named_buffers(/*recurse=*/false))
      if (b.value().defined()) out.emplace_back(prefix + b.key(), b.value());
  }
  return out;
}

std::string shape_str(const torch::Tensor& t) {
  std::ostringstream s;
  s << t.sizes();
  return s.str();
}

// "a, b, c, ... and N more" for error messages that could otherwise list hundreds of names.
std::string first_ten(const std::vector<std::string>& items) {
  std::string out;
  const size_t shown = std::min<size_t>(items.size(), 10);
  for (size_t i = 0; i < shown; ++i) out += (i ? ", " : "") + items[i];
  if (items.size() > shown) out += " and " + std::to_string(items.size() - shown) + " more";
  return out;
}

std::string read_binary(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path + ": cannot open state dict");
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

}  // namespace

NamedTensors network_state(torch::nn::Module& backbone, bool backbone_only) {
  NamedTensors out;
  for (auto& [name, t] : live_tensors(backbone)) {
    if (backbone_only && is_classifier(name)) continue;
    out.emplace_back(name, t.detach().to(torch::kCPU).clone());
  }
  return out;
}

void save_state_dict(const std::string& path, const NamedTensors& tensors) {
  c10::Dict<std::string, at::Tensor> dict;
  for (const auto& [name, t] : tensors) dict.insert(name, t.contiguous());
  // torch::pickle_save would tag the dict with its type (a call of torch.jit._pickle.restore_type_tag), which
  // Python's torch.load(weights_only=True) -- the default from torch 2.6 on -- refuses. The same archive without
  // the tag: a plain {str: Tensor} pickle in torch.save's zip layout (data.pkl + data/N), which every torch from
  // 1.13 on loads with weights_only=True, and LibTorch's own unpickler as well.
  std::vector<char> pickle;
  torch::jit::Pickler pickler([&](const char* buf, size_t n) { pickle.insert(pickle.end(), buf, buf + n); },
                              nullptr, nullptr, nullptr, nullptr, /*tag_aggregates=*/false);
  pickler.protocol();
  pickler.pushIValue(c10::IValue(dict));
  pickler.stop();
  std::string bytes;
  caffe2::serialize::PyTorchStreamWriter writer([&](const void* data, size_t n) {
    bytes.append(static_cast<const char*>(data), n);
    return n;
  });
  torch::jit::writeArchiveAndTensors("data", pickle.data(), pickle.size(), pickler.tensorData(), writer);
  writer.writeEndOfFile();
  write_file_atomic(path, bytes);
}

NamedTensors read_state_dict(const std::string& path) {
  if (!std::filesystem::is_regular_file(path)) throw InputError(path + ": no such state dict file");
  const std::string raw = read_binary(path);
  c10::IValue value;
  try {
    value = torch::pickle_load(std::vector<char>(raw.begin(), raw.end()));
  } catch (const c10::Error&) {
    // LibTorch 1.13's unpickler turns collections.OrderedDict (what model.state_dict() returns) into None, so
    // such files cannot be read here; the records of torch.save's zip are stored uncompressed, so the class
    // name is visible in the raw bytes and the user can be told the one-line fix.
    if (raw.find("collections\nOrderedDict") != std::string::npos)
      throw InputError(path +
                       ": an OrderedDict, which LibTorch cannot unpickle; save a plain dict instead: "
                       "torch.save(dict(model.state_dict()), path)");
    throw InputError(path + ": not a state dict saved with torch.save (cannot be unpickled)");
  } catch (const std::exception& e) {
    throw InputError(path + ": not a state dict saved with torch.save (" + e.what() + ")");
  }
  if (!value.isGenericDict()) throw InputError(path + ": holds a " + value.tagKind() + ", not a dict of tensors");
  NamedTensors out;
  for (const auto& entry : value.toGenericDict()) {
    if (!entry.key().isString()) throw InputError(path + ": a key of the dict is not a string");
    const std::string name = entry.key().toStringRef();
    if (!entry.value().isTensor()) throw InputError(path + ": entry '" + name + "' is not a tensor");
    out.emplace_back(name, entry.value().toTensor());
  }
  return out;
}

InitReport load_state_dict(torch::nn::Module& backbone, const NamedTensors& tensors, const std::string& origin) {
  std::map<std::string, torch::Tensor> model;
  for (auto& [name, t] : live_tensors(backbone)) model.emplace(name, t);
  std::map<std::string, torch::Tensor> file;
  bool file_has_classifier = false;
  for (const auto& [name, t] : tensors) {
    file.emplace(name, t);
    file_has_classifier |= is_classifier(name);
  }

  std::vector<std::string> unexpected, missing, mismatched;
  for (const auto& [name, t] : tensors) {
    auto it = model.find(name);
    if (it == model.end()) {
      unexpected.push_back(name);
    } else if (it->second.sizes() != t.sizes()) {
      mismatched.push_back(name + " " + shape_str(t) + " in file vs " + shape_str(it->second) + " in model");
    }
  }
  InitReport report;
  for (const auto& [name, t] : live_tensors(backbone)) {
    if (file.count(name)) continue;
    if (is_classifier(name) && !file_has_classifier) {
      report.classifier_left = true;
      continue;
    }
    missing.push_back(name);
  }
  if (!unexpected.empty() || !missing.empty() || !mismatched.empty()) {
    std::string msg = origin + ": state dict does not match the model";
    if (!unexpected.empty()) {
      msg += "; not in the model: " + first_ten(unexpected);
      const bool only_fc = std::all_of(unexpected.begin(), unexpected.end(), is_classifier);
      if (only_fc) msg += " (this model has no classifier: export with --backbone-only)";
    }
    if (!mismatched.empty()) msg += "; shape mismatch: " + first_ten(mismatched);
    if (!missing.empty()) msg += "; missing from the file: " + first_ten(missing);
    throw InputError(msg);
  }
  torch::NoGradGuard no_grad;
  for (const auto& [name, t] : tensors) {
    auto& target = model.at(name);
    target.copy_(t.to(target.device(), target.scalar_type()));
    ++report.loaded;
  }
  return report;
}

InitReport load_state_dict(torch::nn::Module& backbone, const std::string& path) {
  return load_state_dict(backbone, read_state_dict(path), path);
}

void export_model(const LoadedModel& m, const std::string& out, bool backbone_only) {
  auto backbone = m.method->backbone();
  NamedTensors tensors = network_state(*backbone, backbone_only);
  int64_t num_classes = 0;
  for (const auto& [name, t] : tensors)
    if (name == "fc.weight") num_classes = t.size(0);
  nlohmann::json meta;
  meta["arch"] = m.config.model.arch;
  meta["width"] = m.config.model.width;
  meta["in_channels"] = m.data.train->channels();
  meta["num_classes"] = num_classes;
  meta["class_names"] = m.data.train->class_names();
  meta["method"] = m.config.method.name;
  meta["normalize"] = {{"mean", m.norm.mean}, {"std", m.norm.std}};
  meta["image_size"] = m.data.train->height();
  save_state_dict(out, tensors);
  write_file_atomic(out + ".json", meta.dump(2) + "\n");
}

void write_npy(const std::string& path, const torch::Tensor& tensor) {
  std::string descr;
  torch::Tensor t = tensor.detach().to(torch::kCPU).contiguous();
  if (t.scalar_type() == torch::kFloat) {
    descr = "<f4";
  } else if (t.scalar_type() == torch::kLong) {
    descr = "<i8";
  } else {
    throw RunError(path + ": write_npy supports float32 and int64 only");
  }
  // Format 1.0: magic, version, u16 header length, then a Python dict literal padded with spaces to a multiple
  // of 64 bytes and ended by '\n' (what numpy itself writes, so the data start aligned).
  std::string shape = "(";
  for (int64_t d = 0; d < t.dim(); ++d)
    shape += std::to_string(t.size(d)) + (t.dim() == 1 || d + 1 < t.dim() ? "," : "");
  shape += ")";
  std::string header = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
  const size_t prefix = 6 + 2 + 2;
  const size_t total = (prefix + header.size() + 1 + 63) / 64 * 64;
  header.append(total - prefix - header.size() - 1, ' ');
  header.push_back('\n');
  std::string out = "\x93NUMPY";
  out.push_back('\x01');
  out.push_back('\x00');
  out.push_back(static_cast<char>(header.size() & 0xff));
  out.push_back(static_cast<char>((header.size() >> 8) & 0xff));
  out += header;
  // LibTorch's CPU tensors are little-endian on every platform it ships for, matching '<'.
  out.append(static_cast<const char*>(t.data_ptr()), t.numel() * t.element_size());
  write_file_atomic(path, out);
}

void write_embedding_files(const std::string& prefix, const torch::Tensor& features, const torch::Tensor& labels,
                           const std::vector<std::string>& names, bool labelled) {
  TORCH_CHECK(features.dim() == 2 && labels.dim() == 1 && features.size(0) == labels.size(0),
              "write_embedding_files: features [N,D] and labels [N] expected");
  TORCH_CHECK(names.empty() || static_cast<int64_t>(names.size()) == features.size(0),
              "write_embedding_files: one name per row expected");
  auto f = features.detach().to(torch::kCPU, torch::kFloat).contiguous();
  auto y = labels.to(torch::kCPU, torch::kLong).contiguous();
  write_npy(prefix + ".npy", f);
  if (labelled) write_npy(prefix + "_labels.npy", y);
  std::ostringstream csv;
  csv.precision(9);  // enough digits to read every float32 back exactly
  const auto* fp = f.data_ptr<float>();
  const auto* yp = y.data_ptr<int64_t>();
  const int64_t n = f.size(0), d = f.size(1);
  csv << "name" << (labelled ? ",label" : "");
  for (int64_t j = 0; j < d; ++j) csv << ",f" << j;
  csv << '\n';
  for (int64_t i = 0; i < n; ++i) {
    const std::string name = names.empty() ? std::to_string(i) : names[static_cast<size_t>(i)];
    // A name with a comma, quote or line break is quoted (RFC 4180), its quotes doubled.
    if (name.find_first_of(",\"\r\n") == std::string::npos) {
      csv << name;
    } else {
      csv << '"';
      for (char c : name) csv << (c == '"' ? "\"\"" : std::string(1, c));
      csv << '"';
    }
    if (labelled) csv << ',' << yp[i];
    for (int64_t j = 0; j < d; ++j) csv << ',' << fp[i * d + j];
    csv << '\n';
  }
  write_file_atomic(prefix + ".csv", csv.str());
}

}  // namespace contrastive
