# Developer shortcuts.  Every target works from a fresh clone once the
# test extra is installed (pip install '.[test]').
PYTHON ?= python3
ASAN_LIB := $(shell gcc -print-file-name=libasan.so)
PRIMITIVE_TESTS := tests/test_thread_pool.py tests/test_threaded.py \
	tests/test_iterator_wrapper.py tests/test_loop.py tests/test_counters.py \
	tests/test_twins.py tests/test_circuit_breaker.py tests/test_backoff.py \
	tests/test_timeout.py tests/test_c_types.py

.PHONY: inplace debug asan leaks test bench docs-bench clean

inplace:  ## build the C modules next to the sources, warnings are errors
	AIOMISC_C_WERROR=1 $(PYTHON) setup.py -q build_ext --inplace --force

debug:  ## -O0 -g3 with asserts
	AIOMISC_C_WERROR=1 AIOMISC_C_DEBUG_BUILD=1 $(PYTHON) setup.py -q build_ext --inplace --force

asan:  ## ASan+UBSan build, then the primitives' tests under it
	AIOMISC_C_WERROR=1 AIOMISC_C_SANITIZE=1 $(PYTHON) setup.py -q build_ext --inplace --force
	PYTHONPATH=$(CURDIR) AIOMISC_C_REQUIRE_EXTENSIONS=1 \
	LD_PRELOAD=$(ASAN_LIB) ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	$(PYTHON) -m pytest -x -q -p no:cacheprovider $(PRIMITIVE_TESTS)
	rm -f aiomisc_c/_*.so

leaks:  ## reference and memory leak checks of the C hot paths (subprocesses)
	cd tests && AIOMISC_C_REQUIRE_EXTENSIONS=1 $(PYTHON) -m pytest -q -p no:cacheprovider \
		test_helpers_leakcheck.py test_thread_pool_leaks.py test_circuit_breaker_leaks.py test_backoff_leaks.py

test:
	pytest

bench:
	$(PYTHON) -m benchmarks

docs-bench:
	$(PYTHON) -m benchmarks --docs

clean:
	rm -rf build dist *.egg-info aiomisc_c/_*.so
