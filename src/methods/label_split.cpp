#include <torch/torch.h>

#include <cmath>

#include "contrastive/common.h"
#include "contrastive/methods.h"

namespace contrastive {

torch::Tensor choose_labeled(const torch::Tensor& labels, double fraction, int64_t per_class, uint64_t seed) {
  auto mask = torch::zeros({labels.size(0)}, torch::kBool);
  if (labels.size(0) == 0) return mask;
  auto gen = at::detail::createCPUGenerator(mix_seed(seed, 0x1abe1));
  const int64_t classes = labels.max().item<int64_t>() + 1;
  for (int64_t c = 0; c < classes; ++c) {
    auto idx = (labels == c).nonzero().view(-1);
    const int64_t n = idx.size(0);
    if (n == 0) continue;
    int64_t keep = per_class > 0 ? std::min(per_class, n)
                                 : std::max<int64_t>(1, static_cast<int64_t>(std::llround(fraction * n)));
    auto chosen = idx.index_select(0, torch::randperm(n, gen, torch::kLong).narrow(0, 0, keep));
    mask.index_fill_(0, chosen, true);
  }
  return mask;
}

}  // namespace contrastive
