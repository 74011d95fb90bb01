"""The HTTP face of a Shoal cluster: a REST/JSON API and a browser console, a gRPC client of the coordinator."""
