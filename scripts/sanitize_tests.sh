#!/usr/bin/env bash
# Builds contrastive_tests with AddressSanitizer + UndefinedBehaviorSanitizer (CONTRASTIVE_SANITIZE=ON, g++)
# in a separate build dir and runs the fast unit tests under them: config, readers, checkpoints, losses,
# augmentation, models, method units and the fuzz regression inputs. The CLI training, export and t-SNE tests
# are left out (seconds to minutes each when instrumented); they run uninstrumented in the normal suite. Only the
# test files that hold the filtered suites are compiled (SANITIZE_TESTS, CMake's CONTRASTIVE_TESTS_ONLY), and not
# the CLI: the instrumented build is the stage's cost.
#
# Environment:
#   SANITIZE_BUILD_DIR  build dir (default build-asan)
#   SANITIZE_JOBS       build jobs (default: nproc)
#   SANITIZE_FILTER     --gtest_filter (default below)
#   SANITIZE_TESTS      the test files built, ;-separated stems (default below; "" builds them all)
#   ASAN_OPTIONS, UBSAN_OPTIONS  override the defaults below
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=${SANITIZE_BUILD_DIR:-build-asan}
JOBS=${SANITIZE_JOBS:-$(nproc)}
FILTER=${SANITIZE_FILTER:-Common.*:Config.*:Checkpoint.*:DataIdx.*:DataCifar.*:DataFolder.*:OwnImages.*:DataSubset.*:Loader.*:Fuzz*:SupConLoss.*:NTXentLoss.*:InfoNCELoss.*:MoCoV3Loss.*:BYOLLoss.*:SimSiamLoss.*:AmdimNce.*:AMDIMLoss.*:LossCollapseStd.*:LossCollapse.*:Losses.*:Bank.*:Augment*:ContrastiveCrop.*:ResNet.*:Heads.*:SplitBatchNorm.*:FusedBatchNorm.*:Moco.*:SimSiam.*:BYOL.*:AMDIM.*:CDS.*:DataLoad.*:DataFashionMnist.*:DistEnv.*:DistAugment.*:DistCollectives.*:Platform.*:Deploy.EveryMethodExportsItsBackbone}

TESTS=${SANITIZE_TESTS-test_common;test_config;test_checkpoint;test_data;test_own_images;test_fuzz_inputs;test_losses;test_augment;test_models;test_methods;test_cds;test_dist;test_platform;test_deploy}
start=$(date +%s)
# -O1 -g1: line numbers in reports at a fraction of -g's compile time and memory with the LibTorch headers.
cmake -S . -B "$BUILD" -DCONTRASTIVE_SANITIZE=ON -DCONTRASTIVE_BUILD_BENCH=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1" "-DCONTRASTIVE_TESTS_ONLY=$TESTS" >/dev/null
cmake --build "$BUILD" -j "$JOBS" --target contrastive_tests
built=$(date +%s)

# LeakSanitizer stays on: LibTorch's globals are still reachable at exit and it reports nothing for this
# subset (checked). halt_on_error: the first report fails the run.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:halt_on_error=1}
# scripts/ubsan.supp: code that is not the product's (stb_image_write's JPEG encoder, which the tests use).
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1:suppressions=$PWD/scripts/ubsan.supp}
"$BUILD/tests/contrastive_tests" --gtest_filter="$FILTER" --gtest_brief=1
echo "sanitize_tests: build $((built - start)) s, tests $(( $(date +%s) - built )) s"
