#include <gtest/gtest.h>

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
  EXPECT_GE(configure_threads(0), 1);
}
