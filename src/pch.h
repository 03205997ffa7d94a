// Precompiled header: the torch include is the expensive one.
#pragma once
#include <torch/torch.h>
