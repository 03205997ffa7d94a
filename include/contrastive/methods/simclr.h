// The typed options of the `simclr` method: SimCLROptions, declared with SupCon's (the two share one
// implementation, src/methods/supcon.cpp). `SimCLROptions().temperature(0.2)`.
#pragma once

#include "contrastive/methods/supcon.h"
