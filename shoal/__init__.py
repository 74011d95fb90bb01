"""Shoal's Python SDK: `shoal.Client` talks to a coordinator over gRPC."""

from shoal.client import DEFAULT_ADDRESS, Client, Collection, Document, Hit
from shoal.errors import (
    AlreadyExists,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    ShoalError,
    Unauthenticated,
    Unavailable,
)

__all__ = [
    "DEFAULT_ADDRESS", "AlreadyExists", "Client", "Collection", "DeadlineExceeded", "Document", "FailedPrecondition",
    "Hit", "InvalidArgument", "NotFound", "PermissionDenied", "ResourceExhausted", "ShoalError", "Unauthenticated",
    "Unavailable",
]
