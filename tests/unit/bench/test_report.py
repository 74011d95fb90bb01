"""The benchmark report: equal-recall matching, the floor ratio, the memory figures and section writing."""

from pathlib import Path

from bench.data import DataSpec
from bench.measure import Latency
from bench.memory import MemoryRun, MemoryStep, MemoryUse
from bench.report import (
    BEGIN,
    END,
    RPC_COORDINATOR,
    Results,
    floor_rows,
    matching,
    partition_role,
    rpc_node_role,
    share_verdict,
    shoal_role,
    table,
    write_section,
)


def _results() -> Results:
    return Results(command="c", machine={}, data=DataSpec(n=10, queries=1, dim=4, seed=1), shards=[2], m=16,
                   ef_construction=200, ef_search_default=128, k=10, batch=5, ingest_batch=5, threads=1, passes=1,
                   clients=2, client_queries=3, concurrency_efs=[64], floor_ef=128)


def _lat(ef: int, p50: float, recall: float | None = None) -> Latency:
    return Latency("s", ef, 10, p50, p50 * 2, p50, p50 * 3, recall)


def test_matching_takes_the_cheapest_item_reaching_the_recall_else_the_best_flagged() -> None:
    items = [_lat(16, 1.0, 0.9), _lat(64, 2.0, 0.99), _lat(256, 4.0, 0.999)]
    best, equal = matching(items, 0.95, lambda x: x.recall, lambda x: x.ef)
    assert (best.ef, equal) == (64, True)
    best, equal = matching(items, 0.9999, lambda x: x.recall, lambda x: x.ef)
    assert (best.ef, equal) == (256, False)


def test_floor_is_the_sum_of_three_p50s_and_the_ratio_divides_shoal_by_it() -> None:
    r = _results()
    r.latency = {RPC_COORDINATOR: [_lat(0, 0.5)], rpc_node_role(2): [_lat(0, 0.3)],
                 partition_role(2): [_lat(128, 0.2)], shoal_role(2): [_lat(64, 1.0), _lat(128, 1.5)]}
    row = floor_rows(r)[0]
    assert row["floor_ms"] == 1.0 and row["shoal_p50_ms"] == 1.5 and row["ratio"] == 1.5


def test_floor_is_absent_when_a_part_was_not_measured() -> None:
    r = _results()
    r.latency = {RPC_COORDINATOR: [_lat(0, 0.5)], shoal_role(2): [_lat(128, 1.5)]}
    assert floor_rows(r)[0]["floor_ms"] is None and floor_rows(r)[0]["ratio"] is None


def test_memory_per_replica_uses_growth_after_the_first_collection() -> None:
    mib = 2**20
    run = MemoryRun(wanted=3, shards=3, vectors=1000, dim=4, cap_bytes=10 * mib,
                    baseline=MemoryUse(5, 500 * mib, 400 * mib), index_bytes_per_replica=1 * mib)
    run.steps = [MemoryStep(1, 1.0, 0.5, 800 * mib, 0, 8), MemoryStep(3, 1.0, 0.25, 860 * mib, 0, 8)]
    assert run.per_replica_bytes() == 10 * mib
    assert run.per_replica_beyond_data() == 9 * mib
    assert run.creation_seconds == 2.0 and run.create_only_seconds == 0.75 and run.created == 3


def test_table_renders_header_alignment_and_rows() -> None:
    assert table(["a", "b"], [[1, "x"]]) == ["| a | b |", "| --- | ---: |", "| 1 | x |"]


def test_write_section_replaces_only_its_own_region(tmp_path: Path) -> None:
    path = tmp_path / "B.md"
    path.write_text(f"head\n{BEGIN}\nold\n{END}\n\n<!-- other:begin -->\nkeep\n<!-- other:end -->\n")
    write_section(f"{BEGIN}\nnew\n{END}\n", path)
    text = path.read_text()
    assert "new" in text and "old" not in text and "keep" in text and text.startswith("head\n")


def test_batched_verdict_counts_the_recall_levels_that_pass() -> None:
    assert share_verdict([True, True]) == "met"
    assert share_verdict([True, False, False]) == "partly met (1 of 3 recall levels)"
    assert share_verdict([False]) == "not met"
    assert share_verdict([]).startswith("not judged")
