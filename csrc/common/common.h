/* common.h — everything shared by the aiomisc_c C modules. */
#ifndef AIOMISC_C_COMMON_COMMON_H
#define AIOMISC_C_COMMON_COMMON_H

#include <Python.h>

#include "common/compat.h"
#include "common/module_state.h"
#include "common/args.h"
#include "common/function_like.h"
#include "common/coro.h"
#include "common/clock.h"
#include "common/counters.h"
#include "common/log.h"

#endif /* AIOMISC_C_COMMON_COMMON_H */
