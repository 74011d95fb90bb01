PYTHON ?= python3
PROTO_SRC := $(wildcard protos/*.proto)
STAMP := .make/installed

.PHONY: install protos run test test-unit lint bench bench-compaction clean

$(STAMP): pyproject.toml
	$(PYTHON) -m pip install -q -e ".[dev,bench]"
	@mkdir -p .make && touch $(STAMP)

install: $(STAMP)

## Regenerate the Python code for protos/*.proto (committed; tests/unit/protos checks it is fresh).
protos: $(STAMP)
	$(PYTHON) -m protos.generate

## Bring up a local cluster (Ray head, shard actors, coordinator) in the foreground; Ctrl-C stops it all.
run: $(STAMP)
	$(PYTHON) -m shoal.cli serve

## Install what the tests need, then lint and run every test (unit, property, integration, fault).
test: $(STAMP)
	$(PYTHON) -m ruff check .
	$(PYTHON) -m pytest -q -ra --durations=10

test-unit: $(STAMP)
	$(PYTHON) -m pytest -q tests/unit

lint: $(STAMP)
	$(PYTHON) -m ruff check .

## Benchmark: Shoal vs in-process hnswlib vs brute force; writes BENCHMARKS.md and bench/recall_qps.png.
bench: $(STAMP)
	$(PYTHON) -m bench.run

## Compaction benchmark: 100k documents, half deleted; recall/QPS before and after a rebuild, p99 during one.
bench-compaction: $(STAMP)
	$(PYTHON) -m bench.compaction

clean:
	rm -rf .make .shoal-data build *.egg-info
