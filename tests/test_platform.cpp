// CPU capability detection (platform.h), the speed defaults it drives (resolve_speed_defaults in config.h), and
// the build description: parsing of given cpuinfo texts, the bf16 refusal, --version and --device cuda.
#include <gtest/gtest.h>
#include <torch/cuda.h>
#include <torch/version.h>

#include <fstream>

#include "contrastive/common.h"
#include "contrastive/config.h"
#include "contrastive/platform.h"
#include "contrastive/resolve.h"
#include "test_util.h"

using namespace contrastive;

namespace {

// Two processors of a /proc/cpuinfo in its real layout (tabs before the colon), with the given flags.
std::string cpuinfo_text(const std::string& model, const std::string& flags) {
  std::string one = "processor\t: 0\nvendor_id\t: X\nmodel name\t: " + model + "\nflags\t\t: " + flags + "\n\n";
  std::string two = one;
  two.replace(two.find(": 0"), 3, ": 1");
  return one + two;
}

const char* const kEpycAvx2 = "fpu vme sse sse2 ssse3 fma avx avx2 bmi1 bmi2 sha_ni";
const char* const kXeonBf16 = "fpu sse2 avx avx2 avx512f avx512dq avx512bw avx512vl avx512_vnni avx512_bf16";
const char* const kSapphire = "avx2 avx512f avx512_bf16 amx_bf16 amx_tile amx_int8";

Config method_config(const std::string& method) {
  Config c;
  c.method.name = method;
  return c;
}

}  // namespace

TEST(Platform, ParsesModelFlagsAndProcessorCount) {
  auto epyc = parse_cpuinfo(cpuinfo_text("AMD EPYC 7B13", kEpycAvx2));
  EXPECT_EQ(epyc.model, "AMD EPYC 7B13");
  EXPECT_EQ(epyc.logical_cpus, 2);
  EXPECT_TRUE(epyc.avx2);
  EXPECT_FALSE(epyc.avx512f);
  EXPECT_FALSE(epyc.avx512_bf16);
  EXPECT_FALSE(epyc.native_bf16());

  auto xeon = parse_cpuinfo(cpuinfo_text("Intel(R) Xeon(R) CPU @ 2.20GHz", kXeonBf16));
  EXPECT_TRUE(xeon.avx512f);
  EXPECT_TRUE(xeon.avx512_bf16);
  EXPECT_FALSE(xeon.amx_bf16);
  EXPECT_TRUE(xeon.native_bf16());

  auto spr = capabilities_from_flags({"avx2", "avx512f", "amx_bf16"});
  EXPECT_TRUE(spr.amx_bf16);
  EXPECT_TRUE(spr.native_bf16());
  // A flag that only starts like another is not it.
  auto lookalike = capabilities_from_flags({"avx512_bf16x", "avx2_", "amx"});
  EXPECT_FALSE(lookalike.avx2 || lookalike.avx512_bf16 || lookalike.amx_bf16);

  auto empty = parse_cpuinfo("");
  EXPECT_EQ(empty.model, "unknown");
  EXPECT_EQ(empty.logical_cpus, 0);
  EXPECT_FALSE(empty.native_bf16());
  EXPECT_NE(describe_cpu(parse_cpuinfo(cpuinfo_text("M", kSapphire))).find("AMX-BF16 yes"), std::string::npos);
}

TEST(Platform, AutoPrecisionPicksBf16OnlyWithNativeBf16AndMeasuredAccuracy) {
  const SpeedContext avx2{false, false, "AMD EPYC 7B13"}, bf16cpu{true, false, "Xeon"}, gpu{true, true, "Xeon"};
  for (const std::string m : {"ce", "cds", "simclr", "supcon", "moco", "byol"}) {
    Config c = method_config(m);
    resolve_speed_defaults(c, avx2);
    EXPECT_EQ(c.train.precision, "fp32") << m;
    EXPECT_EQ(c.train.memory_format, "channels-last") << m;
    Config d = method_config(m);
    resolve_speed_defaults(d, bf16cpu);
    EXPECT_EQ(d.train.precision, bf16_keeps_accuracy(m) ? "bf16" : "fp32") << m;
    Config g = method_config(m);
    resolve_speed_defaults(g, gpu);
    EXPECT_EQ(g.train.precision, "fp32") << m;
  }
  EXPECT_TRUE(bf16_keeps_accuracy("cds"));
  EXPECT_FALSE(bf16_keeps_accuracy("moco"));
  // Explicit choices stand; the old flags are aliases, folded in and cleared.
  Config f = method_config("cds");
  f.train.precision = "fp32";
  f.train.memory_format = "contiguous";
  resolve_speed_defaults(f, bf16cpu);
  EXPECT_EQ(f.train.precision, "fp32");
  EXPECT_EQ(f.train.memory_format, "contiguous");
  Config a = method_config("moco");
  a.train.bf16 = a.train.channels_last = true;
  resolve_speed_defaults(a, bf16cpu);
  EXPECT_EQ(a.train.precision, "bf16");
  EXPECT_EQ(a.train.memory_format, "channels-last");
  EXPECT_FALSE(a.train.bf16 || a.train.channels_last);
}

// oneDNN 2.6's AVX2 backward of a strided 1x1 NHWC convolution with < 8 input channels never returns (a width-4
// ResNet's first downsample): auto picks contiguous there, and an explicit channels-last is refused without
// AVX-512 instead of hanging.
TEST(Platform, NarrowModelsAvoidChannelsLastWhereItHangs) {
  const SpeedContext avx2{false, false, "AMD EPYC"}, avx512{true, false, "Xeon", /*avx512=*/true};
  for (const auto& ctx : {avx2, avx512}) {
    Config narrow = method_config("simclr");
    narrow.model.width = kMinChannelsLastWidth - 1;
    const std::string why = resolve_speed_defaults(narrow, ctx);
    EXPECT_EQ(narrow.train.memory_format, "contiguous");
    EXPECT_NE(why.find("too narrow"), std::string::npos) << why;
    Config wide = method_config("simclr");
    wide.model.width = kMinChannelsLastWidth;
    resolve_speed_defaults(wide, ctx);
    EXPECT_EQ(wide.train.memory_format, "channels-last");
  }
  Config asked = method_config("ce");
  asked.model.width = 4;
  asked.train.memory_format = "channels-last";
  try {
    resolve_speed_defaults(asked, avx2);
    FAIL() << "channels-last at width 4 without AVX-512 was accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("--width >= 8"), std::string::npos) << e.what();
  }
  Config ok = method_config("ce");
  ok.model.width = 4;
  ok.train.memory_format = "channels-last";
  resolve_speed_defaults(ok, avx512);  // the kernels that hang are AVX2's
  EXPECT_EQ(ok.train.memory_format, "channels-last");
}

TEST(Platform, Bf16WithoutNativeSupportIsRefusedNamingTheFeatureUnlessForced) {
  const SpeedContext avx2{false, false, "AMD EPYC 7B13"};
  Config c = method_config("simclr");
  c.train.precision = "bf16";
  try {
    resolve_speed_defaults(c, avx2);
    FAIL() << "no error";
  } catch (const InputError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("AMD EPYC 7B13"), std::string::npos) << msg;
    EXPECT_NE(msg.find("AVX512-BF16"), std::string::npos) << msg;
    EXPECT_NE(msg.find("--allow-emulated-bf16"), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
  Config alias = method_config("simclr");
  alias.train.bf16 = true;
  EXPECT_THROW(resolve_speed_defaults(alias, avx2), InputError);
  Config forced = method_config("simclr");
  forced.train.precision = "bf16";
  forced.train.allow_emulated_bf16 = true;
  resolve_speed_defaults(forced, avx2);
  EXPECT_EQ(forced.train.precision, "bf16");
  // Contradictions and unknown values are one-line errors too.
  Config both = method_config("ce");
  both.train.bf16 = true;
  both.train.precision = "fp32";
  EXPECT_THROW(resolve_speed_defaults(both, avx2), InputError);
  Config bad = method_config("ce");
  bad.train.precision = "fp16";
  EXPECT_THROW(resolve_speed_defaults(bad, avx2), InputError);
}

TEST(Platform, ConfigsOfEarlierVersionsKeepTheirExplicitPrecision) {
  Config c;
  config_from_yaml_string("train:\n  bf16: false\n  channels_last: true\n", c, "old.yaml");
  EXPECT_EQ(c.train.precision, "fp32");
  EXPECT_EQ(c.train.memory_format, "channels-last");
  EXPECT_FALSE(c.train.bf16 || c.train.channels_last);  // folded in, so it compares equal to a resolved config
  Config n;
  config_from_yaml_string("train:\n  precision: auto\n  bf16: false\n", n, "new.yaml");
  EXPECT_EQ(n.train.precision, "auto");
}

TEST(Platform, BuildInfoNamesTheLibTorchVersion) {
  const BuildInfo b = build_info();
  EXPECT_EQ(b.torch_version, TORCH_VERSION);
  EXPECT_FALSE(b.blas.empty());
  EXPECT_FALSE(b.cpu_kernels.empty());
#ifdef CONTRASTIVE_WITH_CUDA
  EXPECT_TRUE(b.cuda_compiled);
#else
  EXPECT_FALSE(b.cuda_compiled);
#endif
  EXPECT_EQ(b.cuda_available, torch::cuda::is_available());
}

TEST(PlatformCLI, VersionNamesLibTorchCudaAndTheCpu) {
  auto r = test_util::run_cli("--version");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find(std::string("LibTorch ") + TORCH_VERSION), std::string::npos) << r.output;
#ifdef CONTRASTIVE_WITH_CUDA
  EXPECT_NE(r.output.find("CUDA compiled in"), std::string::npos) << r.output;
#else
  EXPECT_NE(r.output.find("CPU-only build"), std::string::npos) << r.output;
#endif
  EXPECT_NE(r.output.find("CPU: " + host_cpu().model), std::string::npos) << r.output;
  auto none = test_util::run_cli("");
  EXPECT_EQ(none.status, 2) << none.output;
}

// On a CPU without native bf16 (a cpuinfo file of an AVX2-only EPYC), --bf16 is refused before any work, with
// one line and exit 2; the default picks fp32 there and says why in the log.
TEST(PlatformCLI, Bf16IsRefusedOnACpuWithoutNativeBf16) {
  REQUIRE_FASHION_MNIST();
  const auto dir = test_util::temp_dir("platform-bf16");
  std::ofstream(dir + "/cpuinfo") << cpuinfo_text("AMD EPYC 7B13 64-Core Processor", kEpycAvx2);
  const std::string env = "CONTRASTIVE_CPUINFO=" + dir + "/cpuinfo ";
  const std::string base = "train --method ce --epochs 1 " + test_util::quick_flags() + " --out " + dir;
  // run_cli prefixes `timeout`, so the variable goes through env(1).
  auto r = test_util::run_cli_env(env, base + "/r1 --bf16");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("AMD EPYC 7B13"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("AVX512-BF16"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("Exception raised from"), std::string::npos) << r.output;
  auto ok = test_util::run_cli_env(env, base + "/r2");
  ASSERT_EQ(ok.status, 0) << ok.output;
  EXPECT_NE(ok.output.find("precision fp32 (auto: this CPU has no native bf16"), std::string::npos) << ok.output;
  std::ifstream cfg(dir + "/r2/config.yaml");
  std::string yaml((std::istreambuf_iterator<char>(cfg)), std::istreambuf_iterator<char>());
  EXPECT_NE(yaml.find("precision: \"fp32\""), std::string::npos) << yaml;
  // quick_flags train width 4: too narrow for channels-last (config.h, kMinChannelsLastWidth).
  EXPECT_NE(yaml.find("memory_format: \"contiguous\""), std::string::npos) << yaml;
  auto forced = test_util::run_cli_env(env, base + "/r3 --bf16 --allow-emulated-bf16 --stop-after-steps 1");
  EXPECT_EQ(forced.status, 130) << forced.output;  // ran (and stopped as asked) instead of being refused
}

// --device cuda: chosen and refused with one line when no GPU is visible (CPU-only build or no device).
TEST(PlatformCLI, DeviceCudaWithoutAGpuIsOneLineExit2) {
  REQUIRE_FASHION_MNIST();
  if (torch::cuda::is_available()) GTEST_SKIP() << "a CUDA device is present";
  const auto dir = test_util::temp_dir("platform-cuda");
  auto r = test_util::run_cli("train --method ce --epochs 1 --device cuda " + test_util::quick_flags() +
                              " --out " + dir + "/r");
  EXPECT_EQ(r.status, 2) << r.output;
#ifdef CONTRASTIVE_WITH_CUDA
  EXPECT_NE(r.output.find("this build has CUDA"), std::string::npos) << r.output;
#else
  EXPECT_NE(r.output.find("is CPU-only"), std::string::npos) << r.output;
#endif
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
  auto b = test_util::run_cli("bench --method simclr --device cuda --steps 1 --warmup 0 --train-subset 256");
  EXPECT_EQ(b.status, 2) << b.output;
}
