#include "contrastive/eval.h"

#include <torch/torch.h>

#include <cmath>

#include "contrastive/common.h"
#include "contrastive/dist.h"

namespace contrastive {

torch::Tensor normalize_images(const torch::Tensor& images, const Normalization& norm, torch::Device device) {
  auto x = images.to(device, /*non_blocking=*/true).to(torch::kFloat).div_(255.0);
  const auto c = x.size(1);
  auto opts = torch::TensorOptions().dtype(torch::kFloat).device(device);
  auto mean = torch::tensor(norm.mean, torch::kDouble).to(opts).view({1, c, 1, 1});
  auto std = torch::tensor(norm.std, torch::kDouble).to(opts).view({1, c, 1, 1});
  return x.sub_(mean).div_(std);
}

namespace {

// Runs `fn` over the dataset in order, in eval mode under no_grad, restoring the training flag afterwards.
template <typename Fn>
void for_each_batch(MethodImpl& method, const Dataset& data, const Normalization& norm, torch::Device device,
                    int64_t batch_size, Fn fn) {
  torch::NoGradGuard no_grad;
  const bool was_training = method.is_training();
  method.eval();
  for (int64_t start = 0; start < data.size(); start += batch_size) {
    const int64_t end = std::min(data.size(), start + batch_size);
    auto idx = torch::arange(start, end, torch::kLong);
    auto x = normalize_images(data.get(idx), norm, device);
    fn(x, data.labels().index_select(0, idx));
  }
  method.train(was_training);
}

}  // namespace

CalibrationBins::CalibrationBins(int64_t bins) {
  if (bins < 1) throw InputError("calibration: the number of bins must be >= 1, got " + std::to_string(bins));
  count.assign(static_cast<size_t>(bins), 0.0);
  confidence.assign(static_cast<size_t>(bins), 0.0);
  correct.assign(static_cast<size_t>(bins), 0.0);
}

void CalibrationBins::add(const torch::Tensor& probs, const torch::Tensor& labels) {
  if (probs.dim() != 2 || labels.dim() != 1 || probs.size(0) != labels.size(0))
    throw InputError("calibration: probabilities [N, C] and labels [N] expected");
  if (probs.size(0) == 0) return;
  torch::NoGradGuard no_grad;
  auto p = probs.detach().to(torch::kCPU, torch::kDouble);
  const double lo = p.min().item<double>(), hi = p.max().item<double>();
  if (!(lo >= 0 && hi <= 1 + 1e-6))
    throw InputError("calibration: probabilities must lie in [0, 1] (softmax of the logits), found values in [" +
                     std::to_string(lo) + ", " + std::to_string(hi) + "]");
  auto [conf, pred] = p.max(1);
  conf = conf.clamp_max(1.0);
  const int64_t B = bins();
  auto bin = (conf * static_cast<double>(B)).ceil().sub(1).clamp(0, B - 1).to(torch::kLong);
  auto hit = pred.eq(labels.to(torch::kCPU, torch::kLong)).to(torch::kDouble);
  auto n = torch::bincount(bin, {}, B).to(torch::kDouble).contiguous();
  auto c = torch::bincount(bin, conf, B).to(torch::kDouble).contiguous();
  auto k = torch::bincount(bin, hit, B).to(torch::kDouble).contiguous();
  const double *pn = n.data_ptr<double>(), *pc = c.data_ptr<double>(), *pk = k.data_ptr<double>();
  for (size_t b = 0; b < count.size(); ++b) {
    count[b] += pn[b];
    confidence[b] += pc[b];
    correct[b] += pk[b];
  }
}

void CalibrationBins::add(const CalibrationBins& other) {
  if (other.bins() != bins())
    throw InputError("calibration: cannot add " + std::to_string(other.bins()) + " bins to " +
                     std::to_string(bins()));
  for (size_t b = 0; b < count.size(); ++b) {
    count[b] += other.count[b];
    confidence[b] += other.confidence[b];
    correct[b] += other.correct[b];
  }
}

double CalibrationBins::total() const {
  double n = 0;
  for (double c : count) n += c;
  return n;
}

double CalibrationBins::ece() const {
  const double n = total();
  if (n <= 0) return 0.0;
  double sum = 0;
  for (size_t b = 0; b < count.size(); ++b) sum += std::abs(correct[b] - confidence[b]);
  return sum / n;
}

double expected_calibration_error(const torch::Tensor& probs, const torch::Tensor& labels, int64_t bins) {
  CalibrationBins cal(bins);
  cal.add(probs, labels);
  return cal.ece();
}

namespace {

// Top-1/top-5 counts and the calibration bins of the classifier over `data` (TopK without the ECE filled in).
struct ClassifierCounts {
  int64_t top1 = 0, top5 = 0, count = 0;
  CalibrationBins calibration;
};

ClassifierCounts count_classifier(MethodImpl& method, const Dataset& data, const Normalization& norm,
                                  torch::Device device, int64_t batch_size) {
  ClassifierCounts r;
  for_each_batch(method, data, norm, device, batch_size, [&](const torch::Tensor& x, const torch::Tensor& y) {
    auto logits = method.classify(x).to(torch::kCPU, torch::kFloat);
    const int64_t k = std::min<int64_t>(5, logits.size(1));
    auto top = std::get<1>(logits.topk(k, 1));
    auto hit = top.eq(y.view({-1, 1}));
    r.top1 += hit.narrow(1, 0, 1).sum().item<int64_t>();
    r.top5 += hit.sum().item<int64_t>();
    r.count += y.size(0);
    // A diverged model's non-finite logits count as confidence 0 instead of stopping the evaluation.
    r.calibration.add(torch::nan_to_num(torch::softmax(logits.to(torch::kDouble), 1), 0.0, 0.0, 0.0), y);
  });
  return r;
}

TopK to_topk(double top1, double top5, int64_t count, const CalibrationBins& calibration) {
  TopK r;
  r.count = count;
  if (count > 0) {
    r.top1 = top1 / static_cast<double>(count);
    r.top5 = top5 / static_cast<double>(count);
  }
  r.ece = calibration.ece();
  return r;
}

}  // namespace

TopK evaluate_classifier(MethodImpl& method, const Dataset& data, const Normalization& norm, torch::Device device,
                         int64_t batch_size) {
  const ClassifierCounts c = count_classifier(method, data, norm, device, batch_size);
  return to_topk(static_cast<double>(c.top1), static_cast<double>(c.top5), c.count, c.calibration);
}

torch::Tensor extract_features(MethodImpl& method, const Dataset& data, const Normalization& norm,
                               torch::Device device, int64_t batch_size) {
  std::vector<torch::Tensor> parts;
  for_each_batch(method, data, norm, device, batch_size, [&](const torch::Tensor& x, const torch::Tensor&) {
    parts.push_back(method.embed(x).to(torch::kCPU, torch::kFloat));
  });
  return torch::cat(parts);
}

double knn_top1(const torch::Tensor& bank_features, const torch::Tensor& bank_labels,
                const torch::Tensor& query_features, const torch::Tensor& query_labels, int64_t num_classes,
                int64_t k, double t) {
  torch::NoGradGuard no_grad;
  auto bank =
      torch::nn::functional::normalize(bank_features, torch::nn::functional::NormalizeFuncOptions().dim(1));
  auto query =
      torch::nn::functional::normalize(query_features, torch::nn::functional::NormalizeFuncOptions().dim(1));
  k = std::min<int64_t>(k, bank.size(0));
  int64_t correct = 0;
  const int64_t chunk = 1024;
  for (int64_t s = 0; s < query.size(0); s += chunk) {
    auto q = query.narrow(0, s, std::min(chunk, query.size(0) - s));
    auto sim = q.matmul(bank.t());   // [b, N] cosine
    auto [w, idx] = sim.topk(k, 1);  // neighbours
    auto labels = bank_labels.index_select(0, idx.reshape(-1)).view_as(idx);
    auto weights = (w / t).exp();
    auto scores = torch::zeros({q.size(0), num_classes}, torch::kFloat).scatter_add_(1, labels, weights);
    auto pred = scores.argmax(1);
    correct += pred.eq(query_labels.narrow(0, s, q.size(0))).sum().item<int64_t>();
  }
  return query.size(0) ? static_cast<double>(correct) / query.size(0) : 0.0;
}

LinearProbeResult linear_probe(const torch::Tensor& train_features, const torch::Tensor& train_labels,
                               const torch::Tensor& test_features, const torch::Tensor& test_labels,
                               int64_t num_classes, const LinearProbeOptions& o, const torch::Tensor& val_features,
                               const torch::Tensor& val_labels) {
  if (o.val_fraction < 0 || o.val_fraction >= 1)
    throw InputError("linear probe: the validation fraction must be in [0, 1), got " +
                     std::to_string(o.val_fraction));
  torch::Tensor ftr = train_features, ytr = train_labels, fva = val_features, yva = val_labels;
  if (!fva.defined() && o.val_fraction > 0) {  // hold out a seeded share of the training features
    auto perm = torch::randperm(ftr.size(0), at::detail::createCPUGenerator(o.seed ^ 0x5eedULL), torch::kLong);
    const auto nval = std::min<int64_t>(static_cast<int64_t>(o.val_fraction * ftr.size(0)), ftr.size(0) - 1);
    if (nval > 0) {
      auto vi = perm.narrow(0, 0, nval), ti = perm.narrow(0, nval, ftr.size(0) - nval);
      fva = ftr.index_select(0, vi), yva = ytr.index_select(0, vi);
      ftr = ftr.index_select(0, ti), ytr = ytr.index_select(0, ti);
    }
  }
  torch::manual_seed(o.seed);
  auto mean = ftr.mean(0, true);
  auto std = ftr.std(0, true, true).clamp_min(1e-6);
  auto xtr = (ftr - mean) / std;
  auto xte = (test_features - mean) / std;
  auto xva = fva.defined() ? (fva - mean) / std : torch::Tensor();
  torch::nn::Linear fc(xtr.size(1), num_classes);
  {
    torch::NoGradGuard no_grad;
    fc->weight.normal_(0, 0.01);  // §4/§6: fc ~ N(0, 0.01), bias 0
    fc->bias.zero_();
  }
  torch::optim::SGD opt(fc->parameters(),
                        torch::optim::SGDOptions(o.lr).momentum(o.momentum).weight_decay(o.weight_decay));
  auto gen = at::detail::createCPUGenerator(o.seed);
  const int64_t n = xtr.size(0);
  const int64_t steps_per_epoch = (n + o.batch_size - 1) / o.batch_size;
  const int64_t total = steps_per_epoch * o.epochs;
  LinearProbeResult r;
  r.train_count = n;
  r.val_count = xva.defined() ? xva.size(0) : 0;
  auto top1 = [&](const torch::Tensor& x, const torch::Tensor& y) {
    return fc(x).argmax(1).eq(y).to(torch::kDouble).mean().item<double>();
  };
  int64_t step = 0;
  for (int64_t e = 0; e < o.epochs; ++e) {
    auto perm = torch::randperm(n, gen, torch::kLong);
    for (int64_t s = 0; s < n; s += o.batch_size) {
      const double lr = o.lr * 0.5 * (1 + std::cos(M_PI * static_cast<double>(step++) / total));
      for (auto& g : opt.param_groups()) g.options().set_lr(lr);
      auto idx = perm.narrow(0, s, std::min(o.batch_size, n - s));
      auto loss = torch::nn::functional::cross_entropy(fc(xtr.index_select(0, idx)), ytr.index_select(0, idx));
      opt.zero_grad();
      loss.backward();
      opt.step();
    }
    torch::NoGradGuard no_grad;
    const double acc = top1(xte, test_labels);
    r.per_epoch.push_back(acc);
    r.top1_best = std::max(r.top1_best, acc);
    r.top1_last = acc;
    if (xva.defined()) {
      const double v = top1(xva, yva);
      r.val_per_epoch.push_back(v);
      if (e == 0 || v > r.val_top1) r.val_top1 = v, r.top1 = acc, r.epoch = e + 1;  // ties keep the earlier epoch
    } else {
      r.top1 = acc, r.epoch = e + 1;
    }
  }
  return r;
}

TopK evaluate_classifier_sharded(MethodImpl& method, const std::shared_ptr<Dataset>& data,
                                 const Normalization& norm, torch::Device device, int64_t batch_size) {
  if (!dist::active()) return evaluate_classifier(method, *data, norm, device, batch_size);
  auto shard = take_indices(data, torch::arange(dist::rank(), data->size(), dist::world_size(), torch::kLong));
  ClassifierCounts local =
      shard->size() > 0 ? count_classifier(method, *shard, norm, device, batch_size) : ClassifierCounts{};
  // One sum over ranks: the three counts, then every bin's count, confidence sum and correct count.
  std::vector<double> v{static_cast<double>(local.top1), static_cast<double>(local.top5),
                        static_cast<double>(local.count)};
  const auto& cal = local.calibration;
  for (const auto* part : {&cal.count, &cal.confidence, &cal.correct})
    v.insert(v.end(), part->begin(), part->end());
  auto sums = dist::all_reduce_sum(torch::tensor(v, torch::kDouble));
  auto at = [&](int64_t i) { return sums[i].item<double>(); };
  CalibrationBins all(cal.bins());
  const int64_t B = cal.bins();
  for (int64_t b = 0; b < B; ++b) {
    all.count[b] = at(3 + b);
    all.confidence[b] = at(3 + B + b);
    all.correct[b] = at(3 + 2 * B + b);
  }
  return to_topk(at(0), at(1), static_cast<int64_t>(at(2)), all);
}

torch::Tensor extract_features_sharded(MethodImpl& method, const std::shared_ptr<Dataset>& data,
                                       const Normalization& norm, torch::Device device, int64_t batch_size) {
  if (!dist::active()) return extract_features(method, *data, norm, device, batch_size);
  const int64_t n = data->size(), w = dist::world_size(), per = (n + w - 1) / w;
  // Equal shards (all_gather needs equal shapes): positions past the end repeat the last image, then are cut.
  auto idx = (torch::arange(per, torch::kLong) * w + dist::rank()).clamp_max(n - 1);
  auto local = extract_features(method, *take_indices(data, idx), norm, device, batch_size).contiguous();
  auto all = dist::all_gather(local);  // [w*per, D], rank blocks
  return all.view({w, per, -1}).transpose(0, 1).reshape({w * per, -1}).narrow(0, 0, n).contiguous();
}

}  // namespace contrastive
