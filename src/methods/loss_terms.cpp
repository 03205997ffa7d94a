#include <torch/torch.h>

#include "contrastive/methods.h"

namespace contrastive {

torch::Tensor LossTerms::total() const {
  torch::Tensor sum;
  for (const auto& [name, t] : terms) sum = sum.defined() ? sum + t : t;
  return sum;
}

}  // namespace contrastive
