// Every loss of the library, by family (include what you use):
//  - losses/contrastive.h: SupCon / NT-Xent, MoCo InfoNCE and MoCo v3, SimSiam and BYOL, AMDIM (docs/methods.md
//    §1-§7);
//  - losses/ssl.h: the non-contrastive and self-distillation losses: VICReg, Barlow Twins, NNCLR, DINO (§10).
#pragma once

#include "contrastive/losses/contrastive.h"
#include "contrastive/losses/ssl.h"
