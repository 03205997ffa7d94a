// Interop with Python: state dicts that `torch.load` opens directly (torchvision parameter names), loading such
// state dicts back into a backbone (--init-from), and NumPy .npy arrays for embeddings.
#pragma once

#include <torch/nn/module.h>
#include <torch/types.h>

#include <string>
#include <utility>
#include <vector>

#include "contrastive/loaded_model.h"

namespace contrastive {

using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;

// The inference network's parameters and buffers (running statistics included) under the backbone's own names,
// which for the ResNet are torchvision's (conv1.weight, bn1.running_mean, layer1.0.conv1.weight, ..., fc.weight).
// Heads outside the backbone (projection, CDS auxiliaries, momentum encoders) are not part of it; `backbone_only`
// also drops the classifier (fc.*). Tensors are detached CPU copies.
NamedTensors network_state(torch::nn::Module& backbone, bool backbone_only = false);

// Writes a dict of tensors in the format of Python's torch.save (zip + pickle), atomically (temp file + rename).
void save_state_dict(const std::string& path, const NamedTensors& tensors);
// Reads a dict of tensors written by torch.save(model.state_dict()) or save_state_dict; anything else (not a
// file, not a pickle, values that are not tensors) throws InputError naming the file.
NamedTensors read_state_dict(const std::string& path);

// What load_state_dict did.
struct InitReport {
  int64_t loaded = 0;            // tensors copied
  bool classifier_left = false;  // the model has fc.* but the file has none: fc left at initialisation
};

// Copies a state dict into `backbone` by name. Every name in the file must exist in the model with the same shape,
// and every model tensor must be in the file -- except the classifier (fc.*) when the file has none of it.
// Otherwise throws InputError listing the offending names (the first ten, then how many more). Nothing is
// modified when it throws.
InitReport load_state_dict(torch::nn::Module& backbone, const NamedTensors& tensors, const std::string& origin);
InitReport load_state_dict(torch::nn::Module& backbone, const std::string& path);

// `contrastive export`: writes the network of a loaded model to `out` (.pt) and a sidecar `out + ".json"` with
// arch, width, in_channels, num_classes (0 when no fc is exported), class_names, method, normalize and image_size.
void export_model(const LoadedModel& model, const std::string& out, bool backbone_only);

// NumPy .npy (format 1.0) of a float32 or int64 tensor of any rank, written atomically.
void write_npy(const std::string& path, const torch::Tensor& tensor);

// `contrastive embed` outputs: PREFIX.npy (float32 [N,D]), PREFIX_labels.npy (int64 [N], when labelled) and
// PREFIX.csv: a header row (name,label,f0,...,f{D-1}; no label column when unlabelled), then one row per image:
// its name (a folder image's path relative to the folder, else its index in the split), label and features.
void write_embedding_files(const std::string& prefix, const torch::Tensor& features, const torch::Tensor& labels,
                           const std::vector<std::string>& names = {}, bool labelled = true);

}  // namespace contrastive
