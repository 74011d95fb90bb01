"""load_settings: flag > SHOAL_* env > default, type conversion and bool parsing."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram

from coordinator.settings import CoordinatorSettings
from protos.serving import EVENT_LOOPS, grpc_options, load_settings, new_event_loop, observe
from shard_node.settings import ShardSettings


@dataclass(frozen=True)
class Demo:
    """Demo settings."""

    host: str = field(default="127.0.0.1", metadata={"help": "where to bind"})
    port: int = 0
    ratio: float = 0.5
    verbose: bool = False
    limit: int | None = None
    some_long_name: str = "d"


@pytest.mark.parametrize(("argv", "env", "expected"), [
    ([], {}, Demo()),
    ([], {"SHOAL_PORT": "7"}, Demo(port=7)),
    (["--port", "9"], {"SHOAL_PORT": "7"}, Demo(port=9)),
    (["--port", "9"], {}, Demo(port=9)),
    ([], {"SHOAL_SOME_LONG_NAME": "env"}, Demo(some_long_name="env")),
    (["--some-long-name", "flag"], {"SHOAL_SOME_LONG_NAME": "env"}, Demo(some_long_name="flag")),
    (["--host", ""], {"SHOAL_HOST": "0.0.0.0"}, Demo(host="")),
    ([], {"SHOAL_LIMIT": "12", "SHOAL_RATIO": "2.25"}, Demo(limit=12, ratio=2.25)),
    (["--verbose", "false"], {"SHOAL_VERBOSE": "true"}, Demo(verbose=False)),
    ([], {"PORT": "5", "shoal_port": "6", "SHOAL_UNRELATED": "x"}, Demo()),
])
def test_precedence(argv: list[str], env: dict[str, str], expected: Demo) -> None:
    assert load_settings(Demo, argv, env=env) == expected


def test_types_are_converted() -> None:
    s = load_settings(Demo, ["--limit", "3"], env={"SHOAL_RATIO": "1e-3", "SHOAL_VERBOSE": "1"})
    assert type(s.limit) is int and type(s.ratio) is float and s.verbose is True


@pytest.mark.parametrize(("text", "value"), [
    ("1", True), ("true", True), ("TRUE", True), ("Yes", True), (" on ", True),
    ("0", False), ("false", False), ("No", False), ("off", False), ("", False),
])
def test_bool_parsing(text: str, value: bool) -> None:
    assert load_settings(Demo, [], env={"SHOAL_VERBOSE": text}).verbose is value
    assert load_settings(Demo, ["--verbose", text], env={}).verbose is value


@pytest.mark.parametrize(("name", "text", "fragment"), [
    ("SHOAL_PORT", "eighty", "SHOAL_PORT: invalid literal for int()"),
    ("SHOAL_RATIO", "half", "SHOAL_RATIO: could not convert string to float"),
    ("SHOAL_VERBOSE", "maybe", "SHOAL_VERBOSE: not a boolean: 'maybe'"),
    ("SHOAL_LIMIT", "1.5", "SHOAL_LIMIT:"),
])
def test_bad_env_exits_with_message(name: str, text: str, fragment: str) -> None:
    with pytest.raises(SystemExit) as info:
        load_settings(Demo, [], env={name: text})
    assert isinstance(info.value.code, str) and info.value.code.startswith(fragment)


def test_bad_flag_exits(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        load_settings(Demo, ["--port", "eighty"], env={}, prog="demo")
    assert info.value.code == 2
    assert "--port" in capsys.readouterr().err


def test_unknown_flag_exits() -> None:
    with pytest.raises(SystemExit):
        load_settings(Demo, ["--no-such-flag", "1"], env={})


def test_help_mentions_env_names(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        load_settings(Demo, ["--help"], env={}, prog="demo")
    out = capsys.readouterr().out
    assert "Demo settings." in out and "[env SHOAL_SOME_LONG_NAME]" in out and "where to bind" in out


def test_os_environ_is_the_default_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOAL_PORT", "4321")
    monkeypatch.setenv("SHOAL_VERBOSE", "yes")
    assert load_settings(Demo, []) == Demo(port=4321, verbose=True)


def test_real_shard_settings() -> None:
    s = load_settings(ShardSettings, ["--snapshot-every-ops", "10"],
                      env={"SHOAL_INITIAL_CAPACITY": "64", "SHOAL_SNAPSHOT_EVERY_OPS": "5"})
    assert s == ShardSettings(initial_capacity=64, snapshot_every_ops=10)


@pytest.mark.parametrize("kind", EVENT_LOOPS)
def test_new_event_loop_runs_coroutines_on_the_kind_asked(kind: str) -> None:
    """Each server loop choice gives a working loop of that kind (uvloop's, or the standard selector loop even
    where a loop policy, as in Ray's workers, would hand out uvloop)."""
    loop = new_event_loop(kind)
    try:
        assert loop.run_until_complete(asyncio.sleep(0, result=7)) == 7
        assert ("uvloop" in type(loop).__module__) == (kind == "uvloop")
    finally:
        loop.close()


def test_unknown_event_loop_names_the_choices() -> None:
    with pytest.raises(ValueError, match="uvloop, asyncio"):
        new_event_loop("trio")


@pytest.mark.parametrize("cls", [CoordinatorSettings, ShardSettings])
def test_settings_refuse_an_unknown_event_loop_by_flag_and_by_env_naming_the_choices(
        cls: type, capsys: pytest.CaptureFixture[str]) -> None:
    """A server with a mistyped event_loop stops at start-up with the choices, before it builds anything."""
    with pytest.raises(SystemExit):
        load_settings(cls, ["--event-loop", "trio"], env={})
    err = capsys.readouterr().err
    assert "invalid choice: 'trio'" in err and "'uvloop', 'asyncio'" in err, err
    with pytest.raises(SystemExit, match="SHOAL_EVENT_LOOP: 'trio' is not one of uvloop, asyncio"):
        load_settings(cls, [], env={"SHOAL_EVENT_LOOP": "trio"})
    assert load_settings(cls, [], env={"SHOAL_EVENT_LOOP": "asyncio"}).event_loop == "asyncio"


def test_grpc_options() -> None:
    assert dict(grpc_options(123)) == {"grpc.max_receive_message_length": 123, "grpc.max_send_message_length": 123}


def test_observe_counts_cancelled_work_as_cancelled() -> None:
    """Work cut short by the request deadline is CANCELLED in the request counter, not INTERNAL."""
    registry = CollectorRegistry()
    requests = Counter("t_requests", "requests", ["method", "code"], registry=registry)
    latency = Histogram("t_seconds", "latency", ["method"], registry=registry)
    with pytest.raises(asyncio.CancelledError), observe(requests, latency, (), "Search"):
        raise asyncio.CancelledError
    with pytest.raises(ValueError), observe(requests, latency, (), "Search"):
        raise ValueError("boom")
    assert registry.get_sample_value("t_requests_total", {"method": "Search", "code": "CANCELLED"}) == 1
    assert registry.get_sample_value("t_requests_total", {"method": "Search", "code": "INTERNAL"}) == 1


def test_observe_counts_one_call_under_each_of_its_label_sets() -> None:
    """A node search over two partitions counts once for each partition, with the same duration."""
    registry = CollectorRegistry()
    requests = Counter("p_requests", "requests", ["shard", "method", "code"], registry=registry)
    latency = Histogram("p_seconds", "latency", ["shard", "method"], registry=registry)
    with observe(requests, latency, ("0",), "NodeSearch", others=[("1",)]):
        pass
    for shard in ("0", "1"):
        ok = {"shard": shard, "method": "NodeSearch", "code": "OK"}
        assert registry.get_sample_value("p_requests_total", ok) == 1
        assert registry.get_sample_value("p_seconds_count", {"shard": shard, "method": "NodeSearch"}) == 1
    assert registry.get_sample_value("p_seconds_sum", {"shard": "0", "method": "NodeSearch"}) == \
        registry.get_sample_value("p_seconds_sum", {"shard": "1", "method": "NodeSearch"})
    assert registry.get_sample_value("p_requests_total", {"shard": "2", "method": "NodeSearch", "code": "OK"}) is None
