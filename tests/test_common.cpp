#include <ATen/Parallel.h>
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
