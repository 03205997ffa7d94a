// PipelineViewGenerator: uint8 images -> float views on the target device, one seeded generator per view.
#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include "contrastive/augment.h"
#include "contrastive/common.h"

namespace contrastive {

namespace {
// Stream id of the shared stage (views use mix_seed(seed, view)).
constexpr uint64_t kSharedStream = 1;
}  // namespace

PipelineViewGenerator::PipelineViewGenerator(std::string name, int64_t channels, std::vector<Pipeline> views,
                                             Pipeline shared, bool contrastive_crop, double box_alpha)
    : name_(std::move(name)),
      channels_(channels),
      views_(std::move(views)),
      shared_(std::move(shared)),
      contrastive_crop_(contrastive_crop),
      box_alpha_(box_alpha) {}

void PipelineViewGenerator::set_boxes(torch::Tensor boxes) {
  if (!boxes.defined()) {
    boxes_ = torch::Tensor();
    return;
  }
  if (boxes.dim() != 2 || boxes.size(1) != 4)
    throw InputError("ContrastiveCrop boxes must be [N,4] (h0,w0,h1,w1), got " + std::to_string(boxes.dim()) +
                     "-d");
  boxes_ = boxes.detach().to(torch::kCPU, torch::kFloat64).contiguous();
}

AugmentContext PipelineViewGenerator::context(const torch::Tensor& indices, int64_t batch) const {
  AugmentContext ctx;
  ctx.box_alpha = box_alpha_;
  if (shard_world_ > 1) {
    ctx.rows = torch::arange(batch, torch::kLong) * shard_world_ + shard_rank_;
    ctx.draw_count = batch * shard_world_;
  }
  if (!(contrastive_crop_ && use_boxes_)) return ctx;
  if (!boxes_.defined()) {
    ctx.boxes = torch::tensor({0.0, 0.0, 1.0, 1.0}, torch::kFloat64).repeat({batch, 1});
    return ctx;
  }
  if (!indices.defined() || indices.numel() != batch)
    throw InputError("ContrastiveCrop needs the dataset indices of the batch");
  auto idx = indices.to(torch::kCPU, torch::kLong).flatten();
  if (idx.min().item<int64_t>() < 0 || idx.max().item<int64_t>() >= boxes_.size(0))
    throw InputError("ContrastiveCrop: image index outside the " + std::to_string(boxes_.size(0)) + " boxes");
  ctx.boxes = boxes_.index_select(0, idx);
  return ctx;
}

std::vector<torch::Tensor> PipelineViewGenerator::operator()(const torch::Tensor& images,
                                                             const torch::Tensor& indices, uint64_t seed,
                                                             torch::Device device) const {
  if (images.dim() != 4 || images.scalar_type() != torch::kUInt8 || images.size(1) != channels_)
    throw InputError("augment: expected uint8 images [B," + std::to_string(channels_) + ",H,W]");
  // Convert on the target device: the uint8 copy is 4x smaller than a float one.
  auto x = images.to(device).to(torch::kFloat32).div_(255.0);
  const auto ctx = context(indices, images.size(0));
  if (!shared_.transforms().empty()) {
    auto gen = at::detail::createCPUGenerator(mix_seed(seed, 0, kSharedStream));
    x = shared_.apply(x, gen, ctx);
  }
  std::vector<torch::Tensor> out;
  out.reserve(views_.size());
  for (size_t v = 0; v < views_.size(); ++v) {
    auto gen = at::detail::createCPUGenerator(mix_seed(seed, v));
    out.push_back(views_[v].apply(x, gen, ctx).contiguous());
  }
  return out;
}

std::vector<torch::Tensor> PipelineViewGenerator::sample_crop_boxes(const torch::Tensor& images,
                                                                    const torch::Tensor& indices,
                                                                    uint64_t seed) const {
  std::vector<torch::Tensor> out;
  if (!shared_.transforms().empty()) return out;  // a shared stage would come first; no preset has both
  const auto ctx = context(indices, images.size(0));
  for (size_t v = 0; v < views_.size(); ++v) {
    const auto& ts = views_[v].transforms();
    auto* crop = ts.empty() ? nullptr : dynamic_cast<const RandomResizedCrop*>(ts.front().get());
    if (!crop) continue;
    // Same generator, same first draw as operator(): the boxes are exactly the ones used.
    auto gen = at::detail::createCPUGenerator(mix_seed(seed, v));
    out.push_back(crop->sample_boxes(images.size(0), images.size(2), images.size(3), gen, ctx));
  }
  return out;
}

std::string PipelineViewGenerator::describe() const {
  std::string s = name_ + (contrastive_crop_ ? " (ContrastiveCrop" + std::string(use_boxes_ ? ", on)" : ", off)")
                                             : std::string());
  if (!shared_.transforms().empty()) s += "\n  shared: " + shared_.describe();
  for (size_t v = 0; v < views_.size(); ++v) s += "\n  view " + std::to_string(v) + ": " + views_[v].describe();
  return s;
}

}  // namespace contrastive
