"""A Shoal shard: one HNSW partition with its payload and write-ahead log, served over gRPC."""
