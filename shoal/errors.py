"""Errors the SDK raises: one class per gRPC status a caller can act on."""

from protos.errors import (
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
    "AlreadyExists", "DeadlineExceeded", "FailedPrecondition", "InvalidArgument", "NotFound",
    "PermissionDenied", "ResourceExhausted", "ShoalError", "Unauthenticated", "Unavailable",
]
