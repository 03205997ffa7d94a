// The whole public API in one include (docs/architecture.md). Each stage also has its own header:
// data.h (datasets, loader) -> augment.h / transforms.h (views) -> models.h, losses.h, methods.h, method.h,
// methods/<name>.h, registry.h, method_factory.h (networks, losses, methods and their typed options) ->
// resolve.h (the front door: a Config resolved and validated once) -> trainer.h, train.h (the Trainer with its
// callbacks and run directory; training from a Config) -> eval.h, tsne.h (evaluation) and io.h, export.h, plot.h
// (checkpoints, export, pictures); config.h, dist.h, platform.h, common.h, bench.h. The command line is not part
// of the library: cli.h, with the installed target contrastive::cli.
#pragma once

#include "contrastive/augment.h"
#include "contrastive/bench.h"
#include "contrastive/common.h"
#include "contrastive/config.h"
#include "contrastive/data.h"
#include "contrastive/dist.h"
#include "contrastive/eval.h"
#include "contrastive/export.h"
#include "contrastive/io.h"
#include "contrastive/losses.h"
#include "contrastive/method.h"
#include "contrastive/method_factory.h"
#include "contrastive/methods.h"
#include "contrastive/methods/all.h"
#include "contrastive/models.h"
#include "contrastive/platform.h"
#include "contrastive/plot.h"
#include "contrastive/registry.h"
#include "contrastive/resolve.h"
#include "contrastive/train.h"
#include "contrastive/trainer.h"
#include "contrastive/transforms.h"
#include "contrastive/tsne.h"
