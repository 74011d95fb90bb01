# syntax=docker/dockerfile:1
# Shoal's server image: the coordinator, and the Ray head and workers that host the shard actors
# (they run Shoal's own shard_node code, and Ray and Python must match the coordinator's exactly).
# Build from the repository root:
#   docker build -f deploy/docker/coordinator.Dockerfile -t shoal-coordinator:0.1.0 .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# KubeRay's default probes of Ray pods call wget; g++ compiles hnswlib and the shard nodes' graph library.
RUN apt-get update \
 && apt-get install -y --no-install-recommends wget g++ \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /build
COPY pyproject.toml README.md ./
COPY protos ./protos
COPY coordinator ./coordinator
COPY shard_node ./shard_node
COPY embedder ./embedder
COPY shoal ./shoal
RUN python -m shard_node.native_build && pip install . && rm -rf /build

RUN groupadd --gid 10001 shoal \
 && useradd --uid 10001 --gid 10001 --create-home --home-dir /home/shoal --shell /bin/bash shoal
USER 10001:10001
WORKDIR /home/shoal

# coordinator gRPC and metrics; Ray GCS, dashboard, Ray Client and Ray metrics (head and workers).
EXPOSE 50051 9464 6379 8265 10001 8080
CMD ["python", "-m", "coordinator.server"]
