# The two commands of the README's quick start, and a few more.
PY := .venv/bin/python

.PHONY: setup monitor test test-sanitizers bench clean

setup:
	bash scripts/setup

monitor: setup
	$(PY) -m cbpf

test: setup
	$(PY) -m pytest tests

test-sanitizers: setup
	bash scripts/test-sanitizers

bench: setup
	$(PY) benchmarks/bench_fetch.py
	$(PY) benchmarks/bench_maps.py
	$(PY) benchmarks/bench_events.py

clean:
	rm -rf build .venv cbpf/*.so cbpf/bpf/*.o cbpf/include *.egg-info
