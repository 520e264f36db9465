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

#endif
