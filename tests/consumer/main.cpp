// Uses the installed library: a SupCon loss on random normalised features and a CIFAR ResNet forward.
#include <contrastive/losses.h>
#include <contrastive/models.h>
#include <torch/torch.h>

#include <iostream>

int main() {
  torch::manual_seed(0);
  auto f = torch::nn::functional::normalize(torch::randn({8, 2, 16}),
                                            torch::nn::functional::NormalizeFuncOptions().dim(2));
  contrastive::SupConLoss loss(contrastive::SupConLossOptions().temperature(0.1));
  auto l = loss(f, torch::arange(8).remainder(4));
  contrastive::ResNet net(contrastive::ResNetOptions().width(4).num_classes(3));
  auto y = net->forward(torch::randn({2, 3, 32, 32}));
  const bool ok = std::isfinite(l.item<double>()) && y.size(1) == 3;
  std::cout << "consumer: loss " << l.item<double>() << (ok ? " ok" : " FAILED") << std::endl;
  return ok ? 0 : 1;
}
