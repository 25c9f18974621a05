// Host tensors (the public definition, used by the runtime).
#pragma once

#include "../include/shoal/tensor.h"
