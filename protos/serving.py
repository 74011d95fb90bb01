"""Plumbing every Shoal server shares: settings from flags and SHOAL_* env, health, reflection."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import signal
import time
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

ENV_PREFIX = "SHOAL_"
S = TypeVar("S")


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"not a boolean: {text!r}")


def _base_type(tp: Any) -> Any:
    """The concrete type of `X | None` (or X itself)."""
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0]
    return tp


def load_settings(cls: type[S], argv: Sequence[str] | None = None,
                  env: Mapping[str, str] | None = None, prog: str | None = None, env_prefix: str = ENV_PREFIX) -> S:
    """Build a settings dataclass: flag `--some-field` beats env `SHOAL_SOME_FIELD` beats the default."""
    env = os.environ if env is None else env
    hints = typing.get_type_hints(cls)
    parser = argparse.ArgumentParser(prog=prog, description=(cls.__doc__ or "").strip())
    values: dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        kind = _base_type(hints[field.name])
        convert = _parse_bool if kind is bool else kind
        env_name = env_prefix + field.name.upper()
        help_text = field.metadata.get("help", "")
        choices = field.metadata.get("choices")  # a field that takes one of a few names refuses the others
        parser.add_argument("--" + field.name.replace("_", "-"), dest=field.name, type=convert, choices=choices,
                            default=None, help=f"{help_text} [env {env_name}]")
        if env_name in env:
            try:
                values[field.name] = convert(env[env_name])
            except ValueError as exc:
                raise SystemExit(f"{env_name}: {exc}") from None
            if choices and values[field.name] not in choices:
                raise SystemExit(f"{env_name}: {env[env_name]!r} is not one of {', '.join(map(str, choices))}")
    parsed = parser.parse_args(list(argv) if argv is not None else None)
    values.update({k: v for k, v in vars(parsed).items() if v is not None})
    return cls(**values)


def grpc_options(max_message_bytes: int) -> list[tuple[str, int]]:
    """Channel/server options that set the message size limit both ways."""
    return [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
    ]


def server_options(max_message_bytes: int) -> list[tuple[str, int]]:
    """Server options: the message size limit, and no port sharing (two servers on one port is a mistake)."""
    return [*grpc_options(max_message_bytes), ("grpc.so_reuseport", 0)]


def add_health_and_reflection(server: grpc.Server | grpc.aio.Server,
                              service_names: Sequence[str]) -> Any:
    """Register the standard health service (all SERVING) and server reflection; return the health servicer."""
    is_aio = isinstance(server, grpc.aio.Server)
    servicer = health.aio.HealthServicer() if is_aio else health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    names = [*service_names, health.SERVICE_NAME, reflection.SERVICE_NAME]
    reflection.enable_server_reflection(names, server)
    return servicer


async def mark_serving_async(servicer: Any, service_names: Sequence[str]) -> None:
    """Set every named service (and the server as a whole) SERVING on an aio health servicer."""
    for name in ("", *service_names):
        await servicer.set(name, health_pb2.HealthCheckResponse.SERVING)


def mark_serving(servicer: Any, service_names: Sequence[str]) -> None:
    """Set every named service (and the server as a whole) SERVING on a sync health servicer."""
    for name in ("", *service_names):
        servicer.set(name, health_pb2.HealthCheckResponse.SERVING)


async def wait_for_stop_signal() -> None:
    """Return when the process gets SIGTERM or SIGINT (the asyncio servers' way to shut down in order)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


class observe:  # noqa: N801 - used like a function: `with observe(...):`
    """Count an RPC by method and status code and time it; the metric objects are the caller's. `others`: further
    label sets the same call is counted and timed under (a node search that served several partitions)."""

    def __init__(self, requests: Any, latency: Any, labels: Sequence[str], method: str,
                 others: Sequence[Sequence[str]] = ()) -> None:
        self._requests = requests
        self._latency = latency
        self._label_sets = [tuple(labels), *(tuple(o) for o in others)]
        self._method = method

    def __enter__(self) -> observe:
        self._start = time.perf_counter()
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        code = "OK" if exc is None else getattr(getattr(exc, "code", None), "name", "INTERNAL")
        if isinstance(exc, asyncio.CancelledError):
            code = "CANCELLED"  # the caller went away, or the coordinator's deadline cut the work short
        seconds = time.perf_counter() - self._start
        for labels in self._label_sets:
            self._requests.labels(*labels, self._method, code).inc()
            self._latency.labels(*labels, self._method).observe(seconds)


EVENT_LOOPS = ("uvloop", "asyncio")  # the servers' event loop choices; uvloop's is the default


def new_event_loop(kind: str) -> asyncio.AbstractEventLoop:
    """A fresh event loop of `kind`: uvloop's (libuv, in C: less of each gRPC message's cost spent in the loop
    itself) or the standard library's."""
    if kind == "uvloop":
        import uvloop  # imported here: only servers pay for it

        return uvloop.new_event_loop()
    if kind == "asyncio":
        return asyncio.SelectorEventLoop()  # not new_event_loop(): Ray's workers install uvloop's loop policy
    raise ValueError(f"event_loop must be one of {', '.join(EVENT_LOOPS)}, got {kind!r}")


def pin_blas_threads(threads: int) -> None:
    """Limit BLAS/OpenMP pools to `threads` per process (0 = leave them): on a few cores, one pool per process
    each as wide as the machine makes every process fight for every core."""
    if threads <= 0:
        return
    from threadpoolctl import threadpool_limits  # imported here: only servers pay for it

    threadpool_limits(limits=threads)
