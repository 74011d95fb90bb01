"""The Shoal coordinator: public gRPC API, routing, fan-out and merge over shard actors."""
