/* loop/state.h — interned attribute names and the module state.
 *
 * A unit of the aiomisc_c._loop translation unit: included once,
 * by loop/module.c, after the units listed before it there. */
#ifndef AIOMISC_C_LOOP_STATE_H
#define AIOMISC_C_LOOP_STATE_H

/* Interned attribute names, one field `str_<name>` each. */
#define LOOP_NAMES(X)              \
    X(_get_running_loop)           \
    X(get_event_loop_policy)       \
    X(set_event_loop_policy)       \
    X(new_event_loop)              \
    X(set_event_loop)              \
    X(BaseDefaultEventLoopPolicy)  \
    X(get_event_loop)              \
    X(_local)                      \
    X(_loop)                       \
    X(is_running)                  \
    X(set_debug)                   \
    X(set_default_executor)        \
    X(shutdown)                    \
    X(close)                       \
    X(event_loop_policy)           \
    X(ThreadPoolExecutor)          \
    X(DEFAULT_POOL_SIZE)           \
    X(AbstractEventLoopPolicy)     \
    X(DEFAULT_POLICY)

typedef struct {
    PyObject *asyncio;        /* the asyncio module */
    PyObject *asyncio_events; /* the asyncio.events module */
    PyObject *mod_compat;     /* "aiomisc_c.compat" (a name, imported lazily) */
    PyObject *mod_thread_pool; /* "aiomisc_c.thread_pool" (likewise) */
    PyObject *mod_loop_py;    /* "aiomisc_c._loop_py" (likewise) */
    PyObject *str_default;    /* "default": the pool's statistic name */
    PyObject *kw_statistic_name; /* ("statistic_name",) */
    PyObject *kw_wait;        /* ("wait",) */
    PyObject *zero;           /* 0 */
#define LOOP_FIELD(name) PyObject *str_##name;
    LOOP_NAMES(LOOP_FIELD)
#undef LOOP_FIELD
} loop_state;

/* Every object field of loop_state besides the interned names: the
 * module's traverse and clear are generated from this list and LOOP_NAMES
 * (add a field here when adding it above). */
#define LOOP_STATE_FIELDS(X)                                                  \
    X(asyncio) X(asyncio_events) X(mod_compat) X(mod_thread_pool)             \
    X(mod_loop_py) X(str_default) X(kw_statistic_name) X(kw_wait) X(zero)

static PyModuleDef loop_module;
AIO_DEFINE_STATE_ACCESSORS(loop_state, loop_module)

static const char RUNNING_LOOP_MESSAGE[] =
    "Trying to create new event loop instance but another "
    "default loop in this thread is running right now.";

#endif /* AIOMISC_C_LOOP_STATE_H */
