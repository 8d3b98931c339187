# Developer shortcuts.  Every target works from a fresh clone once the
# test extra is installed (pip install '.[test]').
PYTHON ?= python3
ASAN_LIB := $(shell gcc -print-file-name=libasan.so)
PRIMITIVE_TESTS := tests/test_thread_pool_executor.py tests/test_thread_pool_shutdown.py \
	tests/test_thread_pool_cancellation.py tests/test_thread_pool_workers.py \
	tests/test_thread_pool_core.py tests/test_thread_pool_lifetimes.py tests/test_threaded.py \
	tests/test_thread_pool_closing.py tests/test_thread_pool_closed_delivery.py \
	tests/test_iterator_wrapper.py tests/test_loop.py tests/test_counters.py \
	tests/test_twins.py tests/test_circuit_breaker_states.py tests/test_circuit_breaker_window.py \
	tests/test_circuit_breaker_call.py tests/test_circuit_breaker_call_async.py \
	tests/test_circuit_breaker_cutout.py tests/test_circuit_breaker_hooks.py tests/test_backoff.py \
	tests/test_timeout.py tests/test_backoff_gc.py tests/test_c_types.py \
	tests/test_c_common.py tests/test_c_fast_paths.py tests/test_c_signatures.py \
	tests/test_pool.py tests/test_pool_acquisition.py tests/test_thread_pool_waker.py

.PHONY: inplace debug asan leaks test bench docs-bench clean

inplace:  ## build the C modules next to the sources, warnings are errors
	AIOMISC_C_WERROR=1 $(PYTHON) setup.py -q build_ext --inplace --force

debug:  ## -O0 -g3 with asserts
	AIOMISC_C_WERROR=1 AIOMISC_C_DEBUG_BUILD=1 $(PYTHON) setup.py -q build_ext --inplace --force

asan:  ## ASan+UBSan build, then the primitives' tests under it
	AIOMISC_C_WERROR=1 AIOMISC_C_SANITIZE=1 $(PYTHON) setup.py -q build_ext --inplace --force
	# PYTHONMALLOC=malloc: objects freed to pymalloc's pools are invisible
	# to ASan, so a use after free of a Python object would go unnoticed.
	# --capture=sys: a report written to fd 2 while pytest captures it
	# would be lost with the aborted process.
	PYTHONMALLOC=malloc PYTHONPATH=$(CURDIR) AIOMISC_C_REQUIRE_EXTENSIONS=1 \
	LD_PRELOAD=$(ASAN_LIB) ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	$(PYTHON) -m pytest -x -q -p no:cacheprovider --capture=sys $(PRIMITIVE_TESTS)
	rm -f aiomisc_c/_*.so

leaks:  ## reference and memory leak checks of the C hot paths (subprocesses)
	cd tests && AIOMISC_C_REQUIRE_EXTENSIONS=1 $(PYTHON) -m pytest -q -p no:cacheprovider \
		test_helpers_leakcheck.py test_thread_pool_leaks.py test_circuit_breaker_leaks.py test_backoff_leaks.py \
		test_pool_leaks.py

test:
	pytest

.PHONY: typecheck
typecheck:  ## mypy --strict over the package, tests/typing and the stubs
	$(PYTHON) -m pytest -q -p no:cacheprovider tests/test_typing.py tests/test_stubs.py

bench:
	$(PYTHON) -m benchmarks

docs-bench:
	$(PYTHON) -m benchmarks --docs

clean:
	rm -rf build dist *.egg-info aiomisc_c/_*.so

.PHONY: docs
docs:  ## the HTML docs with warnings as errors (pip install '.[docs]' first)
	sphinx-build -W --keep-going -b html docs docs/_build/html
