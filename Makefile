# edepth_ros: two commands on a fresh machine.
#   make demo   the main job on the built-in default (synthetic bag -> node over DDS -> report)
#   make test   the whole test suite, slow tests included (what CI runs)
# Both create or reuse the pinned virtual environment (.venv) first.

VENV ?= .venv
PY := $(VENV)/bin/python
export EDEPTH_KITTI_SAMPLES ?= $(abspath ../shared/kitti)
export PYTHONUNBUFFERED := 1
# Tests and benchmarks measure one thing at a time on a shared 2-core machine.
export OMP_NUM_THREADS ?= 2
PYTEST := $(PY) -m pytest

.PHONY: venv demo test test-fast bench clean distclean help

help:
	@echo "make demo       run the demo (writes demo_out/)"
	@echo "make test       run every test, slow ones included"
	@echo "make test-fast  run the fast default suite"
	@echo "make bench      run the benchmarks (JSON in bench_out/)"
	@echo "make venv       create or repair the environment only"

venv:
	@EDEPTH_VENV=$(VENV) tools/ensure_venv.sh

demo: venv
	$(VENV)/bin/edepth demo --out demo_out

test: venv
	$(PYTEST) test --slow

test-fast: venv
	$(PYTEST) test

bench: venv
	mkdir -p bench_out
	$(VENV)/bin/edepth bench embodied --json bench_out/embodied.json
	$(VENV)/bin/edepth bench model --backend onnxruntime --height 192 --width 640 --json bench_out/model.json
	$(VENV)/bin/edepth bench node --json bench_out/node.json

clean:
	rm -rf demo_out bench_out .pytest_cache .hypothesis

distclean: clean
	rm -rf $(VENV)
