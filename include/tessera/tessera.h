/* tessera.h — the whole public API. */
#ifndef TESSERA_H
#define TESSERA_H

#include "tessera/status.h"
#include "tessera/tensor.h"
#include "tessera/rng.h"
#include "tessera/arena.h"
#include "tessera/autograd.h"
#include "tessera/params.h"
#include "tessera/ops.h"
#include "tessera/optim.h"
#include "tessera/layers.h"
#include "tessera/config.h"
#include "tessera/network.h"
#include "tessera/run_config.h"
#include "tessera/env.h"
#include "tessera/ops_encoders.h"
#include "tessera/encoders.h"
#include "tessera/losses.h"
#include "tessera/pruning.h"
#include "tessera/moe.h"
#include "tessera/diagnostics.h"
#include "tessera/replay.h"
#include "tessera/agent.h"
#include "tessera/checkpoint.h"
#include "tessera/stats.h"
#include "tessera/sweep.h"

#endif
