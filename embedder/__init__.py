"""The embedding service (text and image encoders behind gRPC). Not built yet: see the embedder issue."""
