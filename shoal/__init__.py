"""Shoal's Python SDK: `shoal.Client` talks to a coordinator over gRPC."""

from shoal.client import DEFAULT_ADDRESS, Client, Collection, Document, Hit
from shoal.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ShoalError,
    Unauthenticated,
    Unavailable,
)

__all__ = [
    "DEFAULT_ADDRESS", "AlreadyExists", "Client", "Collection", "Document", "FailedPrecondition", "Hit",
    "InvalidArgument", "NotFound", "PermissionDenied", "ShoalError", "Unauthenticated", "Unavailable",
]
