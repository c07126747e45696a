PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup run test fuzz bench dist clean

$(STAMP): pyproject.toml packaging/constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c packaging/constraints.txt -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(PY) -m unsampler_gui $(ARGS)

test: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q $(PYTEST_ARGS)

fuzz: $(STAMP)
	UNSAMPLER_FUZZ_EXAMPLES=20000 QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q tests/test_fuzz.py

bench: $(STAMP)
	$(PY) benchmarks/run.py $(ARGS); a=$$?; QT_QPA_PLATFORM=offscreen $(PY) benchmarks/bench_gui.py; b=$$?; \
	QT_QPA_PLATFORM=offscreen $(PY) benchmarks/bench_sequence.py; c=$$?; \
	$(PY) benchmarks/bench_detect.py; $(PY) benchmarks/bench_vae.py; exit $$(( a || b || c ))

clean:
	rm -rf $(VENV) build dist *.egg-info

dist: $(STAMP)
	bash packaging/build_dist.sh
