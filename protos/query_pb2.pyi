from protos import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Ranking(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RANKING_AUTO: _ClassVar[Ranking]
    RANKING_VECTOR: _ClassVar[Ranking]
    RANKING_BM25: _ClassVar[Ranking]
    RANKING_HYBRID: _ClassVar[Ranking]
RANKING_AUTO: Ranking
RANKING_VECTOR: Ranking
RANKING_BM25: Ranking
RANKING_HYBRID: Ranking

class QueryNode(_message.Message):
    __slots__ = ("all", "any", "negate", "near", "match", "field", "ids")
    ALL_FIELD_NUMBER: _ClassVar[int]
    ANY_FIELD_NUMBER: _ClassVar[int]
    NEGATE_FIELD_NUMBER: _ClassVar[int]
    NEAR_FIELD_NUMBER: _ClassVar[int]
    MATCH_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    all: NodeList
    any: NodeList
    negate: QueryNode
    near: Near
    match: Match
    field: FieldPredicate
    ids: IdSet
    def __init__(self, all: _Optional[_Union[NodeList, _Mapping]] = ..., any: _Optional[_Union[NodeList, _Mapping]] = ..., negate: _Optional[_Union[QueryNode, _Mapping]] = ..., near: _Optional[_Union[Near, _Mapping]] = ..., match: _Optional[_Union[Match, _Mapping]] = ..., field: _Optional[_Union[FieldPredicate, _Mapping]] = ..., ids: _Optional[_Union[IdSet, _Mapping]] = ...) -> None: ...

class NodeList(_message.Message):
    __slots__ = ("nodes",)
    NODES_FIELD_NUMBER: _ClassVar[int]
    nodes: _containers.RepeatedCompositeFieldContainer[QueryNode]
    def __init__(self, nodes: _Optional[_Iterable[_Union[QueryNode, _Mapping]]] = ...) -> None: ...

class Near(_message.Message):
    __slots__ = ("vector", "text", "min_similarity", "top")
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    MIN_SIMILARITY_FIELD_NUMBER: _ClassVar[int]
    TOP_FIELD_NUMBER: _ClassVar[int]
    vector: _containers.RepeatedScalarFieldContainer[float]
    text: str
    min_similarity: float
    top: int
    def __init__(self, vector: _Optional[_Iterable[float]] = ..., text: _Optional[str] = ..., min_similarity: _Optional[float] = ..., top: _Optional[int] = ...) -> None: ...

class Match(_message.Message):
    __slots__ = ("field", "text")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    field: str
    text: str
    def __init__(self, field: _Optional[str] = ..., text: _Optional[str] = ...) -> None: ...

class Range(_message.Message):
    __slots__ = ("gt", "gte", "lt", "lte")
    GT_FIELD_NUMBER: _ClassVar[int]
    GTE_FIELD_NUMBER: _ClassVar[int]
    LT_FIELD_NUMBER: _ClassVar[int]
    LTE_FIELD_NUMBER: _ClassVar[int]
    gt: _common_pb2.Value
    gte: _common_pb2.Value
    lt: _common_pb2.Value
    lte: _common_pb2.Value
    def __init__(self, gt: _Optional[_Union[_common_pb2.Value, _Mapping]] = ..., gte: _Optional[_Union[_common_pb2.Value, _Mapping]] = ..., lt: _Optional[_Union[_common_pb2.Value, _Mapping]] = ..., lte: _Optional[_Union[_common_pb2.Value, _Mapping]] = ...) -> None: ...

class FieldPredicate(_message.Message):
    __slots__ = ("field", "eq", "range", "contains", "exists")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    EQ_FIELD_NUMBER: _ClassVar[int]
    IN_FIELD_NUMBER: _ClassVar[int]
    RANGE_FIELD_NUMBER: _ClassVar[int]
    CONTAINS_FIELD_NUMBER: _ClassVar[int]
    EXISTS_FIELD_NUMBER: _ClassVar[int]
    field: str
    eq: _common_pb2.Value
    range: Range
    contains: _common_pb2.Value
    exists: bool
    def __init__(self, field: _Optional[str] = ..., eq: _Optional[_Union[_common_pb2.Value, _Mapping]] = ..., range: _Optional[_Union[Range, _Mapping]] = ..., contains: _Optional[_Union[_common_pb2.Value, _Mapping]] = ..., exists: _Optional[bool] = ..., **kwargs) -> None: ...

class IdSet(_message.Message):
    __slots__ = ("ids",)
    IDS_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, ids: _Optional[_Iterable[str]] = ...) -> None: ...

class Query(_message.Message):
    __slots__ = ("where", "ranking", "vector_weight", "text_weight")
    WHERE_FIELD_NUMBER: _ClassVar[int]
    RANKING_FIELD_NUMBER: _ClassVar[int]
    VECTOR_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    TEXT_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    where: QueryNode
    ranking: Ranking
    vector_weight: float
    text_weight: float
    def __init__(self, where: _Optional[_Union[QueryNode, _Mapping]] = ..., ranking: _Optional[_Union[Ranking, str]] = ..., vector_weight: _Optional[float] = ..., text_weight: _Optional[float] = ...) -> None: ...

class ClauseFigures(_message.Message):
    __slots__ = ("clause", "estimated", "actual")
    CLAUSE_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_FIELD_NUMBER: _ClassVar[int]
    ACTUAL_FIELD_NUMBER: _ClassVar[int]
    clause: str
    estimated: int
    actual: int
    def __init__(self, clause: _Optional[str] = ..., estimated: _Optional[int] = ..., actual: _Optional[int] = ...) -> None: ...

class ShardPlan(_message.Message):
    __slots__ = ("shard", "strategy", "live", "allowed", "clauses", "rounds", "ef", "text_matches", "latency_ms", "exclusion_candidates")
    SHARD_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    LIVE_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_FIELD_NUMBER: _ClassVar[int]
    CLAUSES_FIELD_NUMBER: _ClassVar[int]
    ROUNDS_FIELD_NUMBER: _ClassVar[int]
    EF_FIELD_NUMBER: _ClassVar[int]
    TEXT_MATCHES_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    EXCLUSION_CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    shard: int
    strategy: str
    live: int
    allowed: int
    clauses: _containers.RepeatedCompositeFieldContainer[ClauseFigures]
    rounds: int
    ef: int
    text_matches: int
    latency_ms: float
    exclusion_candidates: int
    def __init__(self, shard: _Optional[int] = ..., strategy: _Optional[str] = ..., live: _Optional[int] = ..., allowed: _Optional[int] = ..., clauses: _Optional[_Iterable[_Union[ClauseFigures, _Mapping]]] = ..., rounds: _Optional[int] = ..., ef: _Optional[int] = ..., text_matches: _Optional[int] = ..., latency_ms: _Optional[float] = ..., exclusion_candidates: _Optional[int] = ...) -> None: ...

class NodeTiming(_message.Message):
    __slots__ = ("node", "shards", "call_ms", "node_ms")
    NODE_FIELD_NUMBER: _ClassVar[int]
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    CALL_MS_FIELD_NUMBER: _ClassVar[int]
    NODE_MS_FIELD_NUMBER: _ClassVar[int]
    node: int
    shards: _containers.RepeatedScalarFieldContainer[int]
    call_ms: float
    node_ms: float
    def __init__(self, node: _Optional[int] = ..., shards: _Optional[_Iterable[int]] = ..., call_ms: _Optional[float] = ..., node_ms: _Optional[float] = ...) -> None: ...

class QueryPlan(_message.Message):
    __slots__ = ("ranking", "tree", "resolved", "shards", "latency_ms", "stage_ms", "nodes", "not_path")
    class StageMsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    RANKING_FIELD_NUMBER: _ClassVar[int]
    TREE_FIELD_NUMBER: _ClassVar[int]
    RESOLVED_FIELD_NUMBER: _ClassVar[int]
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    STAGE_MS_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    NOT_PATH_FIELD_NUMBER: _ClassVar[int]
    ranking: str
    tree: str
    resolved: _containers.RepeatedCompositeFieldContainer[ClauseFigures]
    shards: _containers.RepeatedCompositeFieldContainer[ShardPlan]
    latency_ms: float
    stage_ms: _containers.ScalarMap[str, float]
    nodes: _containers.RepeatedCompositeFieldContainer[NodeTiming]
    not_path: str
    def __init__(self, ranking: _Optional[str] = ..., tree: _Optional[str] = ..., resolved: _Optional[_Iterable[_Union[ClauseFigures, _Mapping]]] = ..., shards: _Optional[_Iterable[_Union[ShardPlan, _Mapping]]] = ..., latency_ms: _Optional[float] = ..., stage_ms: _Optional[_Mapping[str, float]] = ..., nodes: _Optional[_Iterable[_Union[NodeTiming, _Mapping]]] = ..., not_path: _Optional[str] = ...) -> None: ...
