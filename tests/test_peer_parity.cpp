// Loss parity with the real peer: our NT-Xent, negative cosine (SimSiam, BYOL) and MoCo InfoNCE with a queue
// against lightly's NTXentLoss, NegativeCosineSimilarity and NTXentLoss with a memory bank, on random inputs, in
// float64 and float32: values and gradients within 1e-5 relative (max |ours - lightly| / max |lightly|).
//
// The inputs go to Python as a state dict (save_state_dict: what `contrastive export` writes), tests/
// lightly_parity.py computes lightly's losses and gradients and writes them as JSON (exact float64 round trip).
// The interpreter: $CONTRASTIVE_PEER_PYTHON, else the compile definition CONTRASTIVE_PEER_PYTHON, else
// CONTRASTIVE_SOURCE_DIR/.venv/bin/python (bench/peers/setup_peers.sh makes it). A missing interpreter or lightly
// is a FAILURE, not a skip: CI installs both.
//
// Definitions (bench/peers/README.md, "Differences in definition"):
//  - NT-Xent: the same loss (lightly's 2N x (2N-1) logits with cross-entropy = our SupCon with V = 2, no labels,
//    T/T_b = 1); both L2-normalise inside. Our SimCLR *method* keeps the SupContrast reference's T/T_b factor
//    (T_b = 0.07): its loss is 0.5/0.07 = 7.14 x lightly's, gradients too.
//  - SimSiam: the same (½[-cos(p1, sg z2) - cos(p2, sg z1)]); lightly's criterion does not detach, its example
//    does, ours detaches inside.
//  - BYOL: ours is Σ (2 - 2cos) over both directions = 4 + 4 × lightly's example loss ½[-cos - cos], so values
//    map as 4 + 4·lightly and gradients as 4·lightly.
//  - MoCo: the same InfoNCE (logits [q·k, q·queue] / T, cross-entropy with label 0, mean); lightly normalises q
//    and k inside, ours expects normalised inputs (the methods call l2n first, as here); lightly stores its bank
//    [K, D] and hands out the [D, K] transpose, our layout; it enqueues the normalised keys at its pointer.
//  - VICReg: the same loss and defaults as lightly's VICRegLoss (λ = μ = 25, ν = 1, ε = 1e-4; variance halved and
//    covariance summed over the views); lightly fixes γ = 1.
//  - Barlow Twins: the same standardisation as lightly 1.6.0 (F.batch_norm without affine: biased variance, eps
//    1e-5) and the same loss; lightly defaults to λ = 5e-3, we to 0.0051 (the official code), so the test passes
//    our default to lightly. (Older lightly releases divided by torch.std: our .unbiased_std(true).eps(0).)
//  - DINO: the same loss, pairing (teacher crop i skips student crop i), normalisation (n_terms·B), linear warm-up
//    (linspace, reaching teacher_temp at W - 1) and centre EMA as lightly's DINOLoss; the warm-up temperatures
//    here are dyadic so that lightly's float32 linspace is exact. lightly's default W is 30, ours 0.
//  - NNCLR: the lookup is the same as lightly's NNMemoryBankModule (argmax cosine), which returns the raw bank
//    row where ours returns it normalised; the loss is NOT the same: lightly's example feeds the neighbours to
//    NTXentLoss (2B-way SimCLR form), ours is the paper's B-way InfoNCE. The test checks that lightly's example
//    equals our nt_xent_loss on our neighbours, and that our nnclr_loss differs from it.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "contrastive/export.h"
#include "contrastive/losses.h"
#include "test_util.h"

using namespace contrastive;
namespace CF = contrastive::functional;
namespace F = torch::nn::functional;

namespace {

constexpr double kTolerance = 1e-5;
constexpr int64_t kB = 32, kD = 64, kK = 256;
constexpr double kNTXentT = 0.5, kMoCoT = 0.1;  // our simclr and moco defaults
constexpr int64_t kDinoK = 96, kDinoTeacherCrops = 2, kDinoStudentCrops = 4, kDinoEpoch = 2;
constexpr double kNNCLRT = 0.1;  // NNCLRLossOptions' default
// DINO warm-up from 2^-5 to 2^-4 over 5 epochs: every linspace value is exact in float32 (lightly's schedule).
DINOLossOptions dino_parity_options() {
  return DINOLossOptions(kDinoK)
      .warmup_teacher_temp(0.03125)
      .teacher_temp(0.0625)
      .warmup_teacher_temp_epochs(5)
      .student_temp(0.1)
      .center_momentum(0.9);
}

std::string peer_python() {
  if (const char* env = std::getenv("CONTRASTIVE_PEER_PYTHON"); env && *env) return env;
#ifdef CONTRASTIVE_PEER_PYTHON
  return CONTRASTIVE_PEER_PYTHON;
#else
  return std::string(CONTRASTIVE_SOURCE_DIR) + "/.venv/bin/python";
#endif
}

struct PeerResults {
  bool ok = false;
  std::string message;                          // why not ok (or the script's output)
  std::map<std::string, torch::Tensor> inputs;  // float64
  nlohmann::json out;
};

torch::Tensor decode(const nlohmann::json& j) {
  std::vector<int64_t> shape = j.at("shape").get<std::vector<int64_t>>();
  std::vector<double> data = j.at("data").get<std::vector<double>>();
  return torch::tensor(data, torch::kDouble).reshape(shape);
}

// Inputs, one run of the Python script, its JSON output; computed once for all tests of this file.
const PeerResults& peer_results() {
  static const PeerResults results = [] {
    PeerResults r;
    torch::manual_seed(20261122);
    const auto f64 = torch::TensorOptions().dtype(torch::kDouble);
    auto& in = r.inputs;
    in["ntxent.z1"] = torch::randn({kB, kD}, f64) * 2;  // raw (not normalised): the losses normalise
    in["ntxent.z2"] = torch::randn({kB, kD}, f64);
    in["ntxent.temperature"] = torch::tensor(kNTXentT, f64);
    in["negcos.p"] = torch::randn({kB, kD}, f64);
    in["negcos.z"] = torch::randn({kB, kD}, f64);
    for (const char* c : {"simsiam", "byol"})
      for (const char* n : {"p1", "p2", "z1", "z2"}) in[std::string(c) + "." + n] = torch::randn({kB, kD}, f64);
    in["moco.q"] = torch::randn({kB, kD}, f64);
    in["moco.k"] = torch::randn({kB, kD}, f64);
    in["moco.queue"] = F::normalize(torch::randn({kD, kK}, f64), F::NormalizeFuncOptions().dim(0));
    in["moco.temperature"] = torch::tensor(kMoCoT, f64);
    // VICReg: per-dimension scales 0.2..2 (the variance hinge active on some dimensions only), correlated views.
    in["vicreg.z1"] = torch::randn({kB, kD}, f64) * torch::linspace(0.2, 2.0, kD, f64);
    in["vicreg.z2"] = in["vicreg.z1"] + 0.5 * torch::randn({kB, kD}, f64);
    in["barlow.z1"] = torch::randn({kB, kD}, f64) * 2 + 1;
    in["barlow.z2"] = torch::randn({kB, kD}, f64);
    in["barlow.lambda"] = torch::tensor(BarlowTwinsLossOptions().lambda(), f64);
    for (int64_t i = 0; i < kDinoTeacherCrops; ++i)
      in["dino.teacher" + std::to_string(i)] = torch::randn({kB, kDinoK}, f64);
    for (int64_t i = 0; i < kDinoStudentCrops; ++i)
      in["dino.student" + std::to_string(i)] = torch::randn({kB, kDinoK}, f64);
    in["dino.center"] = torch::randn({1, kDinoK}, f64) * 0.3;
    const auto dino = dino_parity_options();
    in["dino.warmup_teacher_temp"] = torch::tensor(dino.warmup_teacher_temp(), f64);
    in["dino.teacher_temp"] = torch::tensor(dino.teacher_temp(), f64);
    in["dino.warmup_teacher_temp_epochs"] =
        torch::tensor(static_cast<double>(dino.warmup_teacher_temp_epochs()), f64);
    in["dino.student_temp"] = torch::tensor(dino.student_temp(), f64);
    in["dino.center_momentum"] = torch::tensor(dino.center_momentum(), f64);
    in["dino.epoch"] = torch::tensor(static_cast<double>(kDinoEpoch), f64);
    for (const char* n : {"z1", "z2", "p1", "p2"}) in[std::string("nnclr.") + n] = torch::randn({kB, kD}, f64);
    // A support set of raw rows of different lengths (lightly stores unnormalised projections).
    in["nnclr.support"] = torch::randn({kK, kD}, f64) * (torch::rand({kK, 1}, f64) * 3 + 0.1);
    in["nnclr.temperature"] = torch::tensor(kNNCLRT, f64);

    const std::string py = peer_python();
    const std::string script = std::string(CONTRASTIVE_SOURCE_DIR) + "/tests/lightly_parity.py";
    const std::string fix = " (CI installs it: bench/peers/setup_peers.sh; or set CONTRASTIVE_PEER_PYTHON)";
    if (!std::filesystem::exists(py)) {
      r.message = "no Python interpreter at " + py + fix;
      return r;
    }
    const auto dir = test_util::temp_dir("peer-parity");
    NamedTensors tensors(in.begin(), in.end());
    save_state_dict(dir + "/in.pt", tensors);
    const std::string cmd = "timeout 300 " + py + " " + script + " " + dir + "/in.pt " + dir + "/out.json 2>&1";
    std::string output;
    FILE* pipe = popen(cmd.c_str(), "r");
    if (!pipe) {
      r.message = "cannot run " + cmd;
      return r;
    }
    std::array<char, 4096> buf;
    size_t n;
    while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0) output.append(buf.data(), n);
    const int st = pclose(pipe);
    const int status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    if (status != 0) {
      r.message = cmd + " exited with " + std::to_string(status) +
                  (status == 3 ? ": lightly (or torch) is not importable" + fix : std::string()) + "\n" + output;
      return r;
    }
    std::ifstream f(dir + "/out.json");
    try {
      r.out = nlohmann::json::parse(f);
    } catch (const std::exception& e) {
      r.message = dir + "/out.json: " + e.what() + "\n" + output;
      return r;
    }
    r.ok = true;
    r.message = output;
    return r;
  }();
  return results;
}

torch::Tensor lightly(const PeerResults& r, const std::string& key) {
  if (!r.out.contains(key)) {
    ADD_FAILURE() << "lightly_parity.py wrote no '" << key << "'";
    return torch::full({1}, std::nan(""), torch::kDouble);
  }
  return decode(r.out.at(key));
}

// max |ours - theirs| / max |theirs|, in float64.
double relative(const torch::Tensor& ours, const torch::Tensor& theirs) {
  auto a = ours.detach().to(torch::kDouble).reshape(theirs.sizes());
  const double scale = std::max(theirs.abs().max().item<double>(), 1e-300);
  return (a - theirs).abs().max().item<double>() / scale;
}

// A leaf of `dtype` with gradient, from a float64 input.
torch::Tensor leaf(const PeerResults& r, const std::string& key, torch::ScalarType dtype, bool grad = true) {
  return r.inputs.at(key).to(dtype).detach().clone().set_requires_grad(grad);
}

const std::array<std::pair<torch::ScalarType, const char*>, 2> kDtypes{
    {{torch::kDouble, "f64"}, {torch::kFloat, "f32"}}};

#define REQUIRE_PEER(r)                                                                     \
  const PeerResults& r = peer_results();                                                    \
  ASSERT_TRUE(r.ok) << "lightly parity could not run: " << r.message;                       \
  SCOPED_TRACE("lightly " + r.out.value("lightly_version", std::string("?")) + ", torch " + \
               r.out.value("torch_version", std::string("?")))

// Expects ours ≈ scale·lightly + offset for the loss, and ours ≈ scale·lightly for every gradient.
void expect_matches(const PeerResults& r, const std::string& name, const char* dt, const torch::Tensor& loss,
                    const std::map<std::string, torch::Tensor>& leaves, double scale = 1.0, double offset = 0.0) {
  const std::string base = name + "." + dt;
  auto expected = lightly(r, base + ".loss") * scale + offset;
  EXPECT_LE(relative(loss, expected), kTolerance)
      << base << ": ours " << loss.item<double>() << ", lightly (mapped) " << expected.item<double>();
  for (const auto& [input, t] : leaves) {
    ASSERT_TRUE(t.grad().defined()) << base << ": no gradient for " << input;
    auto g = lightly(r, base + ".grad." + input) * scale;
    EXPECT_LE(relative(t.grad(), g), kTolerance) << base << ": gradient w.r.t. " << input;
  }
}

}  // namespace

TEST(PeerParity, NTXentMatchesLightlyNTXentLoss) {
  REQUIRE_PEER(r);
  for (const auto& [dtype, dt] : kDtypes) {
    auto z1 = leaf(r, "ntxent.z1", dtype), z2 = leaf(r, "ntxent.z2", dtype);
    // Our defaults for SimCLR: normalisation inside, base temperature = temperature (no T/T_b factor).
    auto loss = CF::nt_xent_loss(z1, z2, NTXentLossOptions().temperature(kNTXentT));
    loss.backward();
    expect_matches(r, "ntxent", dt, loss, {{"z1", z1}, {"z2", z2}});
  }
}

TEST(PeerParity, SimCLRMethodLossIsTOverTbTimesLightlys) {
  REQUIRE_PEER(r);
  // What SupConMethod computes for --method simclr with its defaults (T 0.5, T_base 0.07, the SupContrast
  // reference's SimCLR): the SupCon loss without labels on the L2-normalised views, scaled by T / T_base.
  constexpr double kBaseT = 0.07;
  for (const auto& [dtype, dt] : kDtypes) {
    auto z1 = leaf(r, "ntxent.z1", dtype), z2 = leaf(r, "ntxent.z2", dtype);
    auto feats = torch::stack(
        {F::normalize(z1, F::NormalizeFuncOptions().dim(1)), F::normalize(z2, F::NormalizeFuncOptions().dim(1))},
        1);
    auto options = SupConLossOptions().temperature(kNTXentT).base_temperature(kBaseT);
    auto loss = CF::supcon_loss(feats, {}, {}, options);
    loss.backward();
    expect_matches(r, "ntxent", dt, loss, {{"z1", z1}, {"z2", z2}}, /*scale=*/kNTXentT / kBaseT);
  }
}

TEST(PeerParity, NegativeCosineMatchesLightly) {
  REQUIRE_PEER(r);
  for (const auto& [dtype, dt] : kDtypes) {
    auto p = leaf(r, "negcos.p", dtype), z = leaf(r, "negcos.z", dtype);
    auto loss = CF::negative_cosine(p, z);
    loss.backward();
    expect_matches(r, "negcos", dt, loss, {{"p", p}});
    EXPECT_FALSE(z.grad().defined()) << "the stop-gradient is inside negative_cosine";  // lightly: the caller's
  }
}

TEST(PeerParity, SimSiamLossMatchesLightlyExample) {
  REQUIRE_PEER(r);
  for (const auto& [dtype, dt] : kDtypes) {
    auto p1 = leaf(r, "simsiam.p1", dtype), p2 = leaf(r, "simsiam.p2", dtype);
    auto z1 = leaf(r, "simsiam.z1", dtype, false), z2 = leaf(r, "simsiam.z2", dtype, false);
    auto loss = CF::simsiam_loss(p1, p2, z1, z2);
    loss.backward();
    expect_matches(r, "simsiam", dt, loss, {{"p1", p1}, {"p2", p2}});
  }
}

TEST(PeerParity, BYOLLossIsFourPlusFourTimesLightlys) {
  REQUIRE_PEER(r);
  for (const auto& [dtype, dt] : kDtypes) {
    auto p1 = leaf(r, "byol.p1", dtype), p2 = leaf(r, "byol.p2", dtype);
    auto z1 = leaf(r, "byol.z1", dtype, false), z2 = leaf(r, "byol.z2", dtype, false);
    // Ours: (2 - 2cos(p1,z2)) + (2 - 2cos(p2,z1)); lightly's example: ½[-cos(p1,z2) - cos(p2,z1)].
    auto loss = CF::byol_symmetric_loss(p1, p2, z1, z2);
    loss.backward();
    expect_matches(r, "byol", dt, loss, {{"p1", p1}, {"p2", p2}}, /*scale=*/4.0, /*offset=*/4.0);
  }
}

TEST(PeerParity, MoCoInfoNCEWithQueueMatchesLightlyMemoryBank) {
  REQUIRE_PEER(r);
  for (const auto& [dtype, dt] : kDtypes) {
    auto q = leaf(r, "moco.q", dtype);
    auto k = leaf(r, "moco.k", dtype, false);
    auto queue = r.inputs.at("moco.queue").to(dtype);
    // As MoCoMethod does: normalised query and key, queue [D, K] of unit columns.
    auto qn = F::normalize(q, F::NormalizeFuncOptions().dim(1));
    auto kn = F::normalize(k, F::NormalizeFuncOptions().dim(1));
    auto loss = CF::info_nce(qn, kn, queue, kMoCoT);
    loss.backward();
    expect_matches(r, "moco", dt, loss, {{"q", q}});

    // lightly's bank after the call: the normalised keys at rows 0..B (its pointer started at 0), the rest of the
    // queue unchanged -- the FIFO that MoCoMethod::enqueue keeps as columns.
    auto bank = lightly(r, std::string("moco.") + dt + ".bank_after");  // [K, D]
    ASSERT_EQ(bank.dim(), 2);
    ASSERT_EQ(bank.size(0), kK);
    ASSERT_EQ(bank.size(1), kD);
    EXPECT_LE(relative(kn.to(torch::kDouble), bank.narrow(0, 0, kB)), kTolerance);
    EXPECT_LE(relative(queue.t().narrow(0, kB, kK - kB), bank.narrow(0, kB, kK - kB)), kTolerance);
  }
}

TEST(PeerParity, VICRegMatchesLightlyVICRegLoss) {
  REQUIRE_PEER(r);
  for (const auto& [dtype, dt] : kDtypes) {
    auto z1 = leaf(r, "vicreg.z1", dtype), z2 = leaf(r, "vicreg.z2", dtype);
    const auto opts = VICRegLossOptions();  // lightly's defaults
    auto loss = CF::vicreg_loss(z1, z2, opts);
    loss.backward();
    expect_matches(r, "vicreg", dt, loss, {{"z1", z1}, {"z2", z2}});
    // The logged terms recombine to the same total.
    const auto t = CF::vicreg_terms(z1, z2, opts);
    auto total =
        opts.sim_weight() * t.invariance + opts.var_weight() * t.variance + opts.cov_weight() * t.covariance;
    EXPECT_LE(relative(total, lightly(r, std::string("vicreg.") + dt + ".loss")), kTolerance);
  }
}

TEST(PeerParity, BarlowTwinsMatchesLightlyBarlowTwinsLoss) {
  REQUIRE_PEER(r);
  for (const auto& [dtype, dt] : kDtypes) {
    auto z1 = leaf(r, "barlow.z1", dtype), z2 = leaf(r, "barlow.z2", dtype);
    // Our defaults (BatchNorm standardisation, eps 1e-5, λ 0.0051); lightly got lambda_param = 0.0051.
    auto loss = CF::barlow_twins_loss(z1, z2);
    loss.backward();
    expect_matches(r, "barlow", dt, loss, {{"z1", z1}, {"z2", z2}});
  }
}

TEST(PeerParity, DINOMatchesLightlyDINOLossAndCentreUpdate) {
  REQUIRE_PEER(r);
  for (const auto& [dtype, dt] : kDtypes) {
    std::vector<torch::Tensor> teacher, student;
    std::map<std::string, torch::Tensor> leaves;
    for (int64_t i = 0; i < kDinoTeacherCrops; ++i)
      teacher.push_back(leaf(r, "dino.teacher" + std::to_string(i), dtype, false));
    for (int64_t i = 0; i < kDinoStudentCrops; ++i) {
      const std::string name = "student" + std::to_string(i);
      student.push_back(leaf(r, "dino." + name, dtype));
      leaves[name] = student.back();
    }
    DINOLoss module(dino_parity_options());
    module->to(dtype);
    {
      torch::NoGradGuard no_grad;
      module->center.copy_(r.inputs.at("dino.center"));
    }
    // Epoch 2 of the 5-epoch warm-up: τ_t = 0.03125 + 0.03125·2/4 = 0.046875, as linspace(...)[2].
    EXPECT_DOUBLE_EQ(CF::dino_teacher_temperature(kDinoEpoch, module->options), 0.046875);
    auto loss = module(teacher, student, kDinoEpoch);
    loss.backward();
    expect_matches(r, "dino", dt, loss, leaves);
    auto center_after = lightly(r, std::string("dino.") + dt + ".center_after");
    EXPECT_LE(relative(module->center, center_after), kTolerance) << "centre after the step";
  }
}

TEST(PeerParity, NNCLRNeighboursMatchLightlyNNMemoryBankLossIsThePaperForm) {
  REQUIRE_PEER(r);
  for (const auto& [dtype, dt] : kDtypes) {
    auto z1 = leaf(r, "nnclr.z1", dtype, false), z2 = leaf(r, "nnclr.z2", dtype, false);
    auto p1 = leaf(r, "nnclr.p1", dtype), p2 = leaf(r, "nnclr.p2", dtype);
    auto support = r.inputs.at("nnclr.support").to(dtype);
    auto nn1 = CF::nearest_neighbours(z1, support), nn2 = CF::nearest_neighbours(z2, support);
    // lightly returns the raw bank row, ours the normalised one.
    const auto unit = [](const torch::Tensor& t) { return F::normalize(t, F::NormalizeFuncOptions().dim(1)); };
    EXPECT_LE(relative(nn1, unit(lightly(r, std::string("nnclr.") + dt + ".nn1"))), kTolerance) << "NN(z1)";
    EXPECT_LE(relative(nn2, unit(lightly(r, std::string("nnclr.") + dt + ".nn2"))), kTolerance) << "NN(z2)";
    // lightly's NNCLR example is NT-Xent (the 2B-way SimCLR loss) on (neighbour, other view's prediction).
    const auto ntx = NTXentLossOptions().temperature(kNNCLRT);
    auto example = 0.5 * (CF::nt_xent_loss(nn1, p2, ntx) + CF::nt_xent_loss(nn2, p1, ntx));
    example.backward();
    expect_matches(r, "nnclr", dt, example, {{"p1", p1}, {"p2", p2}});
    // Our NNCLR loss is the paper's B-way InfoNCE on the same neighbours: a different value.
    auto ours = CF::nnclr_loss(z1, z2, p1, p2, support, NNCLRLossOptions().temperature(kNNCLRT));
    EXPECT_GT(relative(ours, lightly(r, std::string("nnclr.") + dt + ".loss")), 1e-2)
        << "nnclr_loss unexpectedly equals lightly's NT-Xent form";
  }
}
