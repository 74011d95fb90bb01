"""Wire contract of Shoal: the .proto sources, their generated Python, and small wire helpers."""
