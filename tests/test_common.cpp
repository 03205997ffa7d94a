#include <ATen/Parallel.h>
#include <dlfcn.h>
#include <gtest/gtest.h>

#include <thread>

#include "contrastive/common.h"

using namespace contrastive;

TEST(Common, MixSeedDependsOnEveryCounter) {
  EXPECT_EQ(mix_seed(1, 2, 3, 4), mix_seed(1, 2, 3, 4));
  EXPECT_NE(mix_seed(1, 2, 3, 4), mix_seed(2, 2, 3, 4));
  EXPECT_NE(mix_seed(1, 2, 3, 4), mix_seed(1, 3, 3, 4));
  EXPECT_NE(mix_seed(1, 2, 3, 4), mix_seed(1, 2, 4, 4));
  EXPECT_NE(mix_seed(1, 2, 3, 4), mix_seed(1, 2, 3, 5));
}

TEST(Common, ConfigureThreadsUsesAllCoresByDefault) {
  EXPECT_EQ(configure_threads(1), 1);
  EXPECT_EQ(at::get_num_threads(), 1);
  // 0 = every core: the count the OS reports, and LibTorch really uses it afterwards.
  const int cores = static_cast<int>(std::thread::hardware_concurrency());
  ASSERT_GT(cores, 0);
  EXPECT_EQ(configure_threads(0), cores);
  EXPECT_EQ(at::get_num_threads(), cores);
}

TEST(Common, ConfigureThreadsSetsOpenBlasToo) {
  // Debian's LibTorch does its GEMMs in OpenBLAS, whose own pool is sized from the environment at load time;
  // a run's weights depended on OMP_NUM_THREADS until configure_threads set it. The pip build uses MKL.
  using GetThreads = int (*)();
  const auto get = reinterpret_cast<GetThreads>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
  if (get == nullptr) GTEST_SKIP() << "this LibTorch does not use OpenBLAS";
  configure_threads(1);
  EXPECT_EQ(get(), 1);
  configure_threads(2);
  EXPECT_EQ(get(), 2);
  configure_threads(0);
}

TEST(Common, ConfigureThreadsKeepsThisThreadsCountWhenAnotherThreadChangesIt) {
  // The loader's augmentation thread sets its own count (LoaderOptions::threads), which also moves LibTorch's
  // global; the thread that called configure_threads keeps its own.
  const int cores = static_cast<int>(std::thread::hardware_concurrency());
  if (cores < 2) GTEST_SKIP() << "needs 2 cores";
  configure_threads(2);
  int other = 0;
  std::thread([&] {
    at::set_num_threads(1);
    other = at::get_num_threads();
  }).join();
  EXPECT_EQ(other, 1);
  EXPECT_EQ(at::get_num_threads(), 2);
  configure_threads(0);
}
