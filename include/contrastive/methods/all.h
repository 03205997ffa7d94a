// Every built-in method's typed options, one header each (include what you use).
#pragma once

#include "contrastive/methods/amdim.h"
#include "contrastive/methods/barlowtwins.h"
#include "contrastive/methods/byol.h"
#include "contrastive/methods/cds.h"
#include "contrastive/methods/ce.h"
#include "contrastive/methods/dino.h"
#include "contrastive/methods/moco.h"
#include "contrastive/methods/nnclr.h"
#include "contrastive/methods/simclr.h"
#include "contrastive/methods/simsiam.h"
#include "contrastive/methods/supcon.h"
#include "contrastive/methods/vicreg.h"
