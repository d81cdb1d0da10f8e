# The two commands of the README's quick start, and a few more.
PY := .venv/bin/python

.PHONY: setup monitor test test-sanitizers typecheck wheels bench docs clean

setup:
	bash scripts/setup

monitor: setup
	$(PY) -m cbpf

test: setup
	$(PY) -m pytest tests

test-sanitizers: setup
	bash scripts/test-sanitizers

typecheck: setup
	$(PY) -m mypy --strict cbpf
	$(PY) -m mypy.stubtest cbpf._cbpf

# manylinux wheels for CPython 3.9-3.15 into wheelhouse/, each tested installed in a fresh virtualenv
wheels:
	bash scripts/build-wheel
	bash scripts/test-wheels

bench: setup
	$(PY) benchmarks/bench_import.py --check
	$(PY) benchmarks/bench_fetch.py
	$(PY) benchmarks/bench_maps.py
	$(PY) benchmarks/bench_events.py
	$(PY) benchmarks/bench_exporter.py
	$(PY) benchmarks/bench_values.py
	$(PY) benchmarks/bench_compile.py
	$(PY) benchmarks/bench_threads.py

# the documentation site into site/, warnings as errors, internal links checked
docs: setup
	bash scripts/docs

clean:
	rm -rf build .venv cbpf/*.so cbpf/bpf/*.o cbpf/include *.egg-info dist wheelhouse site
