from protos import common_pb2 as _common_pb2
from protos import query_pb2 as _query_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class BackupPartitionRequest(_message.Message):
    __slots__ = ("partition", "chunk_bytes")
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    CHUNK_BYTES_FIELD_NUMBER: _ClassVar[int]
    partition: str
    chunk_bytes: int
    def __init__(self, partition: _Optional[str] = ..., chunk_bytes: _Optional[int] = ...) -> None: ...

class BackupHeader(_message.Message):
    __slots__ = ("lsn", "entries", "documents", "checksum", "files", "open")
    LSN_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    DOCUMENTS_FIELD_NUMBER: _ClassVar[int]
    CHECKSUM_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    OPEN_FIELD_NUMBER: _ClassVar[int]
    lsn: int
    entries: int
    documents: int
    checksum: str
    files: _containers.RepeatedCompositeFieldContainer[BackupFile]
    open: OpenPartitionRequest
    def __init__(self, lsn: _Optional[int] = ..., entries: _Optional[int] = ..., documents: _Optional[int] = ..., checksum: _Optional[str] = ..., files: _Optional[_Iterable[_Union[BackupFile, _Mapping]]] = ..., open: _Optional[_Union[OpenPartitionRequest, _Mapping]] = ...) -> None: ...

class BackupFile(_message.Message):
    __slots__ = ("path", "size")
    PATH_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    path: str
    size: int
    def __init__(self, path: _Optional[str] = ..., size: _Optional[int] = ...) -> None: ...

class BackupChunk(_message.Message):
    __slots__ = ("header", "path", "data")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    header: BackupHeader
    path: str
    data: bytes
    def __init__(self, header: _Optional[_Union[BackupHeader, _Mapping]] = ..., path: _Optional[str] = ..., data: _Optional[bytes] = ...) -> None: ...

class ReadLogRequest(_message.Message):
    __slots__ = ("partition", "after_lsn", "max_bytes")
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    AFTER_LSN_FIELD_NUMBER: _ClassVar[int]
    MAX_BYTES_FIELD_NUMBER: _ClassVar[int]
    partition: str
    after_lsn: int
    max_bytes: int
    def __init__(self, partition: _Optional[str] = ..., after_lsn: _Optional[int] = ..., max_bytes: _Optional[int] = ...) -> None: ...

class ReadLogResponse(_message.Message):
    __slots__ = ("records", "last_lsn", "truncated")
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    LAST_LSN_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    records: _containers.RepeatedCompositeFieldContainer[WalRecord]
    last_lsn: int
    truncated: bool
    def __init__(self, records: _Optional[_Iterable[_Union[WalRecord, _Mapping]]] = ..., last_lsn: _Optional[int] = ..., truncated: _Optional[bool] = ...) -> None: ...

class ApplyLogRequest(_message.Message):
    __slots__ = ("partition", "records")
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    partition: str
    records: _containers.RepeatedCompositeFieldContainer[WalRecord]
    def __init__(self, partition: _Optional[str] = ..., records: _Optional[_Iterable[_Union[WalRecord, _Mapping]]] = ...) -> None: ...

class CopyPartitionRequest(_message.Message):
    __slots__ = ("partition", "batch_docs")
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    BATCH_DOCS_FIELD_NUMBER: _ClassVar[int]
    partition: str
    batch_docs: int
    def __init__(self, partition: _Optional[str] = ..., batch_docs: _Optional[int] = ...) -> None: ...

class PartitionChunk(_message.Message):
    __slots__ = ("partition", "lsn", "upsert")
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    LSN_FIELD_NUMBER: _ClassVar[int]
    UPSERT_FIELD_NUMBER: _ClassVar[int]
    partition: str
    lsn: int
    upsert: ShardUpsertRequest
    def __init__(self, partition: _Optional[str] = ..., lsn: _Optional[int] = ..., upsert: _Optional[_Union[ShardUpsertRequest, _Mapping]] = ...) -> None: ...

class NodeSearchRequest(_message.Message):
    __slots__ = ("partitions", "queries", "k", "ef", "with_payload", "explain", "filter", "match", "strategy", "exclude", "oversample", "call")
    PARTITIONS_FIELD_NUMBER: _ClassVar[int]
    QUERIES_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    EF_FIELD_NUMBER: _ClassVar[int]
    WITH_PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    EXPLAIN_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    MATCH_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_FIELD_NUMBER: _ClassVar[int]
    OVERSAMPLE_FIELD_NUMBER: _ClassVar[int]
    CALL_FIELD_NUMBER: _ClassVar[int]
    partitions: _containers.RepeatedScalarFieldContainer[str]
    queries: _common_pb2.FloatMatrix
    k: int
    ef: int
    with_payload: bool
    explain: bool
    filter: _query_pb2.QueryNode
    match: _query_pb2.Match
    strategy: str
    exclude: _containers.RepeatedCompositeFieldContainer[_query_pb2.Near]
    oversample: int
    call: int
    def __init__(self, partitions: _Optional[_Iterable[str]] = ..., queries: _Optional[_Union[_common_pb2.FloatMatrix, _Mapping]] = ..., k: _Optional[int] = ..., ef: _Optional[int] = ..., with_payload: _Optional[bool] = ..., explain: _Optional[bool] = ..., filter: _Optional[_Union[_query_pb2.QueryNode, _Mapping]] = ..., match: _Optional[_Union[_query_pb2.Match, _Mapping]] = ..., strategy: _Optional[str] = ..., exclude: _Optional[_Iterable[_Union[_query_pb2.Near, _Mapping]]] = ..., oversample: _Optional[int] = ..., call: _Optional[int] = ...) -> None: ...

class NodeSearchResponse(_message.Message):
    __slots__ = ("rows", "per_row", "ids", "distances", "text_ids", "text_scores", "payloads", "plans", "node_ms", "exclusions", "call", "error_code", "error", "error_kind")
    class PayloadsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _common_pb2.Payload
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_common_pb2.Payload, _Mapping]] = ...) -> None: ...
    ROWS_FIELD_NUMBER: _ClassVar[int]
    PER_ROW_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    DISTANCES_FIELD_NUMBER: _ClassVar[int]
    TEXT_IDS_FIELD_NUMBER: _ClassVar[int]
    TEXT_SCORES_FIELD_NUMBER: _ClassVar[int]
    PAYLOADS_FIELD_NUMBER: _ClassVar[int]
    PLANS_FIELD_NUMBER: _ClassVar[int]
    NODE_MS_FIELD_NUMBER: _ClassVar[int]
    EXCLUSIONS_FIELD_NUMBER: _ClassVar[int]
    CALL_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ERROR_KIND_FIELD_NUMBER: _ClassVar[int]
    rows: int
    per_row: int
    ids: _containers.RepeatedScalarFieldContainer[str]
    distances: bytes
    text_ids: _containers.RepeatedScalarFieldContainer[str]
    text_scores: bytes
    payloads: _containers.MessageMap[str, _common_pb2.Payload]
    plans: _containers.RepeatedCompositeFieldContainer[_query_pb2.ShardPlan]
    node_ms: float
    exclusions: _containers.RepeatedCompositeFieldContainer[RankedList]
    call: int
    error_code: int
    error: str
    error_kind: str
    def __init__(self, rows: _Optional[int] = ..., per_row: _Optional[int] = ..., ids: _Optional[_Iterable[str]] = ..., distances: _Optional[bytes] = ..., text_ids: _Optional[_Iterable[str]] = ..., text_scores: _Optional[bytes] = ..., payloads: _Optional[_Mapping[str, _common_pb2.Payload]] = ..., plans: _Optional[_Iterable[_Union[_query_pb2.ShardPlan, _Mapping]]] = ..., node_ms: _Optional[float] = ..., exclusions: _Optional[_Iterable[_Union[RankedList, _Mapping]]] = ..., call: _Optional[int] = ..., error_code: _Optional[int] = ..., error: _Optional[str] = ..., error_kind: _Optional[str] = ...) -> None: ...

class OpenPartitionRequest(_message.Message):
    __slots__ = ("partition", "collection", "shard", "replica", "spec_json", "data_dir")
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    SHARD_FIELD_NUMBER: _ClassVar[int]
    REPLICA_FIELD_NUMBER: _ClassVar[int]
    SPEC_JSON_FIELD_NUMBER: _ClassVar[int]
    DATA_DIR_FIELD_NUMBER: _ClassVar[int]
    partition: str
    collection: str
    shard: int
    replica: int
    spec_json: str
    data_dir: str
    def __init__(self, partition: _Optional[str] = ..., collection: _Optional[str] = ..., shard: _Optional[int] = ..., replica: _Optional[int] = ..., spec_json: _Optional[str] = ..., data_dir: _Optional[str] = ...) -> None: ...

class ClosePartitionRequest(_message.Message):
    __slots__ = ("partition", "delete_data")
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    DELETE_DATA_FIELD_NUMBER: _ClassVar[int]
    partition: str
    delete_data: bool
    def __init__(self, partition: _Optional[str] = ..., delete_data: _Optional[bool] = ...) -> None: ...

class ClosePartitionResponse(_message.Message):
    __slots__ = ("existed",)
    EXISTED_FIELD_NUMBER: _ClassVar[int]
    existed: bool
    def __init__(self, existed: _Optional[bool] = ...) -> None: ...

class ListPartitionsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListPartitionsResponse(_message.Message):
    __slots__ = ("partitions",)
    PARTITIONS_FIELD_NUMBER: _ClassVar[int]
    partitions: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, partitions: _Optional[_Iterable[str]] = ...) -> None: ...

class ShardUpsertRequest(_message.Message):
    __slots__ = ("partition", "ids", "vectors", "payloads", "lsn")
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    VECTORS_FIELD_NUMBER: _ClassVar[int]
    PAYLOADS_FIELD_NUMBER: _ClassVar[int]
    LSN_FIELD_NUMBER: _ClassVar[int]
    partition: str
    ids: _containers.RepeatedScalarFieldContainer[str]
    vectors: _common_pb2.FloatMatrix
    payloads: _containers.RepeatedCompositeFieldContainer[_common_pb2.Payload]
    lsn: int
    def __init__(self, partition: _Optional[str] = ..., ids: _Optional[_Iterable[str]] = ..., vectors: _Optional[_Union[_common_pb2.FloatMatrix, _Mapping]] = ..., payloads: _Optional[_Iterable[_Union[_common_pb2.Payload, _Mapping]]] = ..., lsn: _Optional[int] = ...) -> None: ...

class ShardDeleteRequest(_message.Message):
    __slots__ = ("partition", "ids", "lsn")
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    LSN_FIELD_NUMBER: _ClassVar[int]
    partition: str
    ids: _containers.RepeatedScalarFieldContainer[str]
    lsn: int
    def __init__(self, partition: _Optional[str] = ..., ids: _Optional[_Iterable[str]] = ..., lsn: _Optional[int] = ...) -> None: ...

class ShardWriteResponse(_message.Message):
    __slots__ = ("lsn", "affected")
    LSN_FIELD_NUMBER: _ClassVar[int]
    AFFECTED_FIELD_NUMBER: _ClassVar[int]
    lsn: int
    affected: int
    def __init__(self, lsn: _Optional[int] = ..., affected: _Optional[int] = ...) -> None: ...

class ShardGetRequest(_message.Message):
    __slots__ = ("partition", "ids", "with_vectors")
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    WITH_VECTORS_FIELD_NUMBER: _ClassVar[int]
    partition: str
    ids: _containers.RepeatedScalarFieldContainer[str]
    with_vectors: bool
    def __init__(self, partition: _Optional[str] = ..., ids: _Optional[_Iterable[str]] = ..., with_vectors: _Optional[bool] = ...) -> None: ...

class ShardGetResponse(_message.Message):
    __slots__ = ("documents",)
    DOCUMENTS_FIELD_NUMBER: _ClassVar[int]
    documents: _containers.RepeatedCompositeFieldContainer[_common_pb2.Document]
    def __init__(self, documents: _Optional[_Iterable[_Union[_common_pb2.Document, _Mapping]]] = ...) -> None: ...

class ShardStatsRequest(_message.Message):
    __slots__ = ("partition", "checksum")
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    CHECKSUM_FIELD_NUMBER: _ClassVar[int]
    partition: str
    checksum: bool
    def __init__(self, partition: _Optional[str] = ..., checksum: _Optional[bool] = ...) -> None: ...

class ShardSnapshotRequest(_message.Message):
    __slots__ = ("partition",)
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    partition: str
    def __init__(self, partition: _Optional[str] = ...) -> None: ...

class ShardStats(_message.Message):
    __slots__ = ("live", "tombstones", "capacity", "last_lsn", "snapshot_lsn", "wal_bytes", "documents", "slots_used", "m", "ef_construction", "memory_bytes", "disk_bytes", "rebuild", "disk_error", "checksum", "checksum_lsn", "checksum_live", "storage", "memory", "disk")
    LIVE_FIELD_NUMBER: _ClassVar[int]
    TOMBSTONES_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    LAST_LSN_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_LSN_FIELD_NUMBER: _ClassVar[int]
    WAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    DOCUMENTS_FIELD_NUMBER: _ClassVar[int]
    SLOTS_USED_FIELD_NUMBER: _ClassVar[int]
    M_FIELD_NUMBER: _ClassVar[int]
    EF_CONSTRUCTION_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    DISK_BYTES_FIELD_NUMBER: _ClassVar[int]
    REBUILD_FIELD_NUMBER: _ClassVar[int]
    DISK_ERROR_FIELD_NUMBER: _ClassVar[int]
    CHECKSUM_FIELD_NUMBER: _ClassVar[int]
    CHECKSUM_LSN_FIELD_NUMBER: _ClassVar[int]
    CHECKSUM_LIVE_FIELD_NUMBER: _ClassVar[int]
    STORAGE_FIELD_NUMBER: _ClassVar[int]
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    DISK_FIELD_NUMBER: _ClassVar[int]
    live: int
    tombstones: int
    capacity: int
    last_lsn: int
    snapshot_lsn: int
    wal_bytes: int
    documents: int
    slots_used: int
    m: int
    ef_construction: int
    memory_bytes: int
    disk_bytes: int
    rebuild: _common_pb2.RebuildStatus
    disk_error: str
    checksum: str
    checksum_lsn: int
    checksum_live: int
    storage: str
    memory: _common_pb2.StorageBytes
    disk: _common_pb2.StorageBytes
    def __init__(self, live: _Optional[int] = ..., tombstones: _Optional[int] = ..., capacity: _Optional[int] = ..., last_lsn: _Optional[int] = ..., snapshot_lsn: _Optional[int] = ..., wal_bytes: _Optional[int] = ..., documents: _Optional[int] = ..., slots_used: _Optional[int] = ..., m: _Optional[int] = ..., ef_construction: _Optional[int] = ..., memory_bytes: _Optional[int] = ..., disk_bytes: _Optional[int] = ..., rebuild: _Optional[_Union[_common_pb2.RebuildStatus, _Mapping]] = ..., disk_error: _Optional[str] = ..., checksum: _Optional[str] = ..., checksum_lsn: _Optional[int] = ..., checksum_live: _Optional[int] = ..., storage: _Optional[str] = ..., memory: _Optional[_Union[_common_pb2.StorageBytes, _Mapping]] = ..., disk: _Optional[_Union[_common_pb2.StorageBytes, _Mapping]] = ...) -> None: ...

class ShardRebuildRequest(_message.Message):
    __slots__ = ("partition", "m", "ef_construction", "reason", "wait")
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    M_FIELD_NUMBER: _ClassVar[int]
    EF_CONSTRUCTION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    WAIT_FIELD_NUMBER: _ClassVar[int]
    partition: str
    m: int
    ef_construction: int
    reason: str
    wait: bool
    def __init__(self, partition: _Optional[str] = ..., m: _Optional[int] = ..., ef_construction: _Optional[int] = ..., reason: _Optional[str] = ..., wait: _Optional[bool] = ...) -> None: ...

class WalRecord(_message.Message):
    __slots__ = ("lsn", "upsert", "delete")
    LSN_FIELD_NUMBER: _ClassVar[int]
    UPSERT_FIELD_NUMBER: _ClassVar[int]
    DELETE_FIELD_NUMBER: _ClassVar[int]
    lsn: int
    upsert: ShardUpsertRequest
    delete: ShardDeleteRequest
    def __init__(self, lsn: _Optional[int] = ..., upsert: _Optional[_Union[ShardUpsertRequest, _Mapping]] = ..., delete: _Optional[_Union[ShardDeleteRequest, _Mapping]] = ...) -> None: ...

class ShardQueryRequest(_message.Message):
    __slots__ = ("filter", "vector", "match", "k", "ef", "with_payload", "explain", "strategy")
    FILTER_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    MATCH_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    EF_FIELD_NUMBER: _ClassVar[int]
    WITH_PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    EXPLAIN_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    filter: _query_pb2.QueryNode
    vector: bytes
    match: _query_pb2.Match
    k: int
    ef: int
    with_payload: bool
    explain: bool
    strategy: str
    def __init__(self, filter: _Optional[_Union[_query_pb2.QueryNode, _Mapping]] = ..., vector: _Optional[bytes] = ..., match: _Optional[_Union[_query_pb2.Match, _Mapping]] = ..., k: _Optional[int] = ..., ef: _Optional[int] = ..., with_payload: _Optional[bool] = ..., explain: _Optional[bool] = ..., strategy: _Optional[str] = ...) -> None: ...

class RankedList(_message.Message):
    __slots__ = ("ids", "scores")
    IDS_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[str]
    scores: bytes
    def __init__(self, ids: _Optional[_Iterable[str]] = ..., scores: _Optional[bytes] = ...) -> None: ...

class ShardQueryResponse(_message.Message):
    __slots__ = ("vector_hits", "text_hits", "payloads", "plan")
    class PayloadsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _common_pb2.Payload
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_common_pb2.Payload, _Mapping]] = ...) -> None: ...
    VECTOR_HITS_FIELD_NUMBER: _ClassVar[int]
    TEXT_HITS_FIELD_NUMBER: _ClassVar[int]
    PAYLOADS_FIELD_NUMBER: _ClassVar[int]
    PLAN_FIELD_NUMBER: _ClassVar[int]
    vector_hits: RankedList
    text_hits: RankedList
    payloads: _containers.MessageMap[str, _common_pb2.Payload]
    plan: _query_pb2.ShardPlan
    def __init__(self, vector_hits: _Optional[_Union[RankedList, _Mapping]] = ..., text_hits: _Optional[_Union[RankedList, _Mapping]] = ..., payloads: _Optional[_Mapping[str, _common_pb2.Payload]] = ..., plan: _Optional[_Union[_query_pb2.ShardPlan, _Mapping]] = ...) -> None: ...
