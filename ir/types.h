// Element types, static shapes and tensor types (the public definitions, used by every layer).
#pragma once

#include "../include/shoal/types.h"
