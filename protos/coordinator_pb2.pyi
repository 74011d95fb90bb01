from protos import common_pb2 as _common_pb2
from protos import query_pb2 as _query_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SnapshotRequest(_message.Message):
    __slots__ = ("collection", "directory")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    DIRECTORY_FIELD_NUMBER: _ClassVar[int]
    collection: str
    directory: str
    def __init__(self, collection: _Optional[str] = ..., directory: _Optional[str] = ...) -> None: ...

class ShardBackup(_message.Message):
    __slots__ = ("index", "replica", "lsn", "documents", "entries", "checksum", "bytes")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    REPLICA_FIELD_NUMBER: _ClassVar[int]
    LSN_FIELD_NUMBER: _ClassVar[int]
    DOCUMENTS_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    CHECKSUM_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    index: int
    replica: int
    lsn: int
    documents: int
    entries: int
    checksum: str
    bytes: int
    def __init__(self, index: _Optional[int] = ..., replica: _Optional[int] = ..., lsn: _Optional[int] = ..., documents: _Optional[int] = ..., entries: _Optional[int] = ..., checksum: _Optional[str] = ..., bytes: _Optional[int] = ...) -> None: ...

class SnapshotResponse(_message.Message):
    __slots__ = ("directory", "manifest", "shards", "documents", "bytes", "seconds")
    DIRECTORY_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_FIELD_NUMBER: _ClassVar[int]
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    DOCUMENTS_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    directory: str
    manifest: str
    shards: _containers.RepeatedCompositeFieldContainer[ShardBackup]
    documents: int
    bytes: int
    seconds: float
    def __init__(self, directory: _Optional[str] = ..., manifest: _Optional[str] = ..., shards: _Optional[_Iterable[_Union[ShardBackup, _Mapping]]] = ..., documents: _Optional[int] = ..., bytes: _Optional[int] = ..., seconds: _Optional[float] = ...) -> None: ...

class RestoreRequest(_message.Message):
    __slots__ = ("directory", "name", "shards")
    DIRECTORY_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    directory: str
    name: str
    shards: int
    def __init__(self, directory: _Optional[str] = ..., name: _Optional[str] = ..., shards: _Optional[int] = ...) -> None: ...

class UpdateCollectionRequest(_message.Message):
    __slots__ = ("name", "write_consistency_factor")
    NAME_FIELD_NUMBER: _ClassVar[int]
    WRITE_CONSISTENCY_FACTOR_FIELD_NUMBER: _ClassVar[int]
    name: str
    write_consistency_factor: int
    def __init__(self, name: _Optional[str] = ..., write_consistency_factor: _Optional[int] = ...) -> None: ...

class CreateCollectionRequest(_message.Message):
    __slots__ = ("name", "dim", "metric", "shards", "hnsw", "fields", "model", "chunking", "embed_fields", "tombstone_threshold", "replication_factor", "write_consistency_factor", "storage")
    class FieldsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    DIM_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    HNSW_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    CHUNKING_FIELD_NUMBER: _ClassVar[int]
    EMBED_FIELDS_FIELD_NUMBER: _ClassVar[int]
    TOMBSTONE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    REPLICATION_FACTOR_FIELD_NUMBER: _ClassVar[int]
    WRITE_CONSISTENCY_FACTOR_FIELD_NUMBER: _ClassVar[int]
    STORAGE_FIELD_NUMBER: _ClassVar[int]
    name: str
    dim: int
    metric: _common_pb2.Metric
    shards: int
    hnsw: _common_pb2.HnswParams
    fields: _containers.ScalarMap[str, str]
    model: str
    chunking: Chunking
    embed_fields: _containers.RepeatedScalarFieldContainer[str]
    tombstone_threshold: float
    replication_factor: int
    write_consistency_factor: int
    storage: str
    def __init__(self, name: _Optional[str] = ..., dim: _Optional[int] = ..., metric: _Optional[_Union[_common_pb2.Metric, str]] = ..., shards: _Optional[int] = ..., hnsw: _Optional[_Union[_common_pb2.HnswParams, _Mapping]] = ..., fields: _Optional[_Mapping[str, str]] = ..., model: _Optional[str] = ..., chunking: _Optional[_Union[Chunking, _Mapping]] = ..., embed_fields: _Optional[_Iterable[str]] = ..., tombstone_threshold: _Optional[float] = ..., replication_factor: _Optional[int] = ..., write_consistency_factor: _Optional[int] = ..., storage: _Optional[str] = ...) -> None: ...

class Chunking(_message.Message):
    __slots__ = ("words", "overlap")
    WORDS_FIELD_NUMBER: _ClassVar[int]
    OVERLAP_FIELD_NUMBER: _ClassVar[int]
    words: int
    overlap: int
    def __init__(self, words: _Optional[int] = ..., overlap: _Optional[int] = ...) -> None: ...

class CollectionInfo(_message.Message):
    __slots__ = ("name", "dim", "metric", "shards", "hnsw", "created_at", "count", "shard_info", "fields", "model", "modality", "chunking", "embed_fields", "tombstone_threshold", "replication_factor", "write_consistency_factor", "storage", "memory", "disk")
    class FieldsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    DIM_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    HNSW_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    SHARD_INFO_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    MODALITY_FIELD_NUMBER: _ClassVar[int]
    CHUNKING_FIELD_NUMBER: _ClassVar[int]
    EMBED_FIELDS_FIELD_NUMBER: _ClassVar[int]
    TOMBSTONE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    REPLICATION_FACTOR_FIELD_NUMBER: _ClassVar[int]
    WRITE_CONSISTENCY_FACTOR_FIELD_NUMBER: _ClassVar[int]
    STORAGE_FIELD_NUMBER: _ClassVar[int]
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    DISK_FIELD_NUMBER: _ClassVar[int]
    name: str
    dim: int
    metric: _common_pb2.Metric
    shards: int
    hnsw: _common_pb2.HnswParams
    created_at: str
    count: int
    shard_info: _containers.RepeatedCompositeFieldContainer[ShardInfo]
    fields: _containers.ScalarMap[str, str]
    model: str
    modality: str
    chunking: Chunking
    embed_fields: _containers.RepeatedScalarFieldContainer[str]
    tombstone_threshold: float
    replication_factor: int
    write_consistency_factor: int
    storage: str
    memory: _common_pb2.StorageBytes
    disk: _common_pb2.StorageBytes
    def __init__(self, name: _Optional[str] = ..., dim: _Optional[int] = ..., metric: _Optional[_Union[_common_pb2.Metric, str]] = ..., shards: _Optional[int] = ..., hnsw: _Optional[_Union[_common_pb2.HnswParams, _Mapping]] = ..., created_at: _Optional[str] = ..., count: _Optional[int] = ..., shard_info: _Optional[_Iterable[_Union[ShardInfo, _Mapping]]] = ..., fields: _Optional[_Mapping[str, str]] = ..., model: _Optional[str] = ..., modality: _Optional[str] = ..., chunking: _Optional[_Union[Chunking, _Mapping]] = ..., embed_fields: _Optional[_Iterable[str]] = ..., tombstone_threshold: _Optional[float] = ..., replication_factor: _Optional[int] = ..., write_consistency_factor: _Optional[int] = ..., storage: _Optional[str] = ..., memory: _Optional[_Union[_common_pb2.StorageBytes, _Mapping]] = ..., disk: _Optional[_Union[_common_pb2.StorageBytes, _Mapping]] = ...) -> None: ...

class ShardInfo(_message.Message):
    __slots__ = ("index", "address", "live", "tombstones", "wal_bytes", "capacity", "tombstone_ratio", "memory_bytes", "disk_bytes", "m", "ef_construction", "rebuild", "replica", "available", "error", "last_lsn", "disk_error", "up_to_date", "checksum", "checksum_lsn", "storage", "memory", "disk")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    LIVE_FIELD_NUMBER: _ClassVar[int]
    TOMBSTONES_FIELD_NUMBER: _ClassVar[int]
    WAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    TOMBSTONE_RATIO_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    DISK_BYTES_FIELD_NUMBER: _ClassVar[int]
    M_FIELD_NUMBER: _ClassVar[int]
    EF_CONSTRUCTION_FIELD_NUMBER: _ClassVar[int]
    REBUILD_FIELD_NUMBER: _ClassVar[int]
    REPLICA_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    LAST_LSN_FIELD_NUMBER: _ClassVar[int]
    DISK_ERROR_FIELD_NUMBER: _ClassVar[int]
    UP_TO_DATE_FIELD_NUMBER: _ClassVar[int]
    CHECKSUM_FIELD_NUMBER: _ClassVar[int]
    CHECKSUM_LSN_FIELD_NUMBER: _ClassVar[int]
    STORAGE_FIELD_NUMBER: _ClassVar[int]
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    DISK_FIELD_NUMBER: _ClassVar[int]
    index: int
    address: str
    live: int
    tombstones: int
    wal_bytes: int
    capacity: int
    tombstone_ratio: float
    memory_bytes: int
    disk_bytes: int
    m: int
    ef_construction: int
    rebuild: _common_pb2.RebuildStatus
    replica: int
    available: bool
    error: str
    last_lsn: int
    disk_error: str
    up_to_date: bool
    checksum: str
    checksum_lsn: int
    storage: str
    memory: _common_pb2.StorageBytes
    disk: _common_pb2.StorageBytes
    def __init__(self, index: _Optional[int] = ..., address: _Optional[str] = ..., live: _Optional[int] = ..., tombstones: _Optional[int] = ..., wal_bytes: _Optional[int] = ..., capacity: _Optional[int] = ..., tombstone_ratio: _Optional[float] = ..., memory_bytes: _Optional[int] = ..., disk_bytes: _Optional[int] = ..., m: _Optional[int] = ..., ef_construction: _Optional[int] = ..., rebuild: _Optional[_Union[_common_pb2.RebuildStatus, _Mapping]] = ..., replica: _Optional[int] = ..., available: _Optional[bool] = ..., error: _Optional[str] = ..., last_lsn: _Optional[int] = ..., disk_error: _Optional[str] = ..., up_to_date: _Optional[bool] = ..., checksum: _Optional[str] = ..., checksum_lsn: _Optional[int] = ..., storage: _Optional[str] = ..., memory: _Optional[_Union[_common_pb2.StorageBytes, _Mapping]] = ..., disk: _Optional[_Union[_common_pb2.StorageBytes, _Mapping]] = ...) -> None: ...

class DropCollectionRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DropCollectionResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListCollectionsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListCollectionsResponse(_message.Message):
    __slots__ = ("collections",)
    COLLECTIONS_FIELD_NUMBER: _ClassVar[int]
    collections: _containers.RepeatedCompositeFieldContainer[CollectionInfo]
    def __init__(self, collections: _Optional[_Iterable[_Union[CollectionInfo, _Mapping]]] = ...) -> None: ...

class DescribeCollectionRequest(_message.Message):
    __slots__ = ("name", "allow_partial", "checksums")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ALLOW_PARTIAL_FIELD_NUMBER: _ClassVar[int]
    CHECKSUMS_FIELD_NUMBER: _ClassVar[int]
    name: str
    allow_partial: bool
    checksums: bool
    def __init__(self, name: _Optional[str] = ..., allow_partial: _Optional[bool] = ..., checksums: _Optional[bool] = ...) -> None: ...

class UpsertRequest(_message.Message):
    __slots__ = ("collection", "ids", "vectors", "payloads", "texts", "images", "vectors_model", "vector_owners")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    VECTORS_FIELD_NUMBER: _ClassVar[int]
    PAYLOADS_FIELD_NUMBER: _ClassVar[int]
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    VECTORS_MODEL_FIELD_NUMBER: _ClassVar[int]
    VECTOR_OWNERS_FIELD_NUMBER: _ClassVar[int]
    collection: str
    ids: _containers.RepeatedScalarFieldContainer[str]
    vectors: _common_pb2.FloatMatrix
    payloads: _containers.RepeatedCompositeFieldContainer[_common_pb2.Payload]
    texts: _containers.RepeatedScalarFieldContainer[str]
    images: _containers.RepeatedScalarFieldContainer[bytes]
    vectors_model: str
    vector_owners: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, collection: _Optional[str] = ..., ids: _Optional[_Iterable[str]] = ..., vectors: _Optional[_Union[_common_pb2.FloatMatrix, _Mapping]] = ..., payloads: _Optional[_Iterable[_Union[_common_pb2.Payload, _Mapping]]] = ..., texts: _Optional[_Iterable[str]] = ..., images: _Optional[_Iterable[bytes]] = ..., vectors_model: _Optional[str] = ..., vector_owners: _Optional[_Iterable[int]] = ...) -> None: ...

class UpsertResponse(_message.Message):
    __slots__ = ("upserted",)
    UPSERTED_FIELD_NUMBER: _ClassVar[int]
    upserted: int
    def __init__(self, upserted: _Optional[int] = ...) -> None: ...

class DeleteRequest(_message.Message):
    __slots__ = ("collection", "ids")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    collection: str
    ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, collection: _Optional[str] = ..., ids: _Optional[_Iterable[str]] = ...) -> None: ...

class DeleteResponse(_message.Message):
    __slots__ = ("deleted",)
    DELETED_FIELD_NUMBER: _ClassVar[int]
    deleted: int
    def __init__(self, deleted: _Optional[int] = ...) -> None: ...

class GetRequest(_message.Message):
    __slots__ = ("collection", "ids", "with_vectors")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    WITH_VECTORS_FIELD_NUMBER: _ClassVar[int]
    collection: str
    ids: _containers.RepeatedScalarFieldContainer[str]
    with_vectors: bool
    def __init__(self, collection: _Optional[str] = ..., ids: _Optional[_Iterable[str]] = ..., with_vectors: _Optional[bool] = ...) -> None: ...

class GetResponse(_message.Message):
    __slots__ = ("documents",)
    DOCUMENTS_FIELD_NUMBER: _ClassVar[int]
    documents: _containers.RepeatedCompositeFieldContainer[_common_pb2.Document]
    def __init__(self, documents: _Optional[_Iterable[_Union[_common_pb2.Document, _Mapping]]] = ...) -> None: ...

class CountRequest(_message.Message):
    __slots__ = ("collection",)
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    collection: str
    def __init__(self, collection: _Optional[str] = ...) -> None: ...

class CountResponse(_message.Message):
    __slots__ = ("count",)
    COUNT_FIELD_NUMBER: _ClassVar[int]
    count: int
    def __init__(self, count: _Optional[int] = ...) -> None: ...

class SearchRequest(_message.Message):
    __slots__ = ("collection", "vectors", "k", "ef", "with_payload", "filter", "filter_tree", "query", "query_tree", "ranking", "vector_weight", "text_weight", "explain", "texts", "images", "vectors_model", "allow_partial", "columns", "oversample", "timeout_s")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    VECTORS_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    EF_FIELD_NUMBER: _ClassVar[int]
    WITH_PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    FILTER_TREE_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    QUERY_TREE_FIELD_NUMBER: _ClassVar[int]
    RANKING_FIELD_NUMBER: _ClassVar[int]
    VECTOR_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    TEXT_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    EXPLAIN_FIELD_NUMBER: _ClassVar[int]
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    VECTORS_MODEL_FIELD_NUMBER: _ClassVar[int]
    ALLOW_PARTIAL_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    OVERSAMPLE_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_S_FIELD_NUMBER: _ClassVar[int]
    collection: str
    vectors: _common_pb2.FloatMatrix
    k: int
    ef: int
    with_payload: bool
    filter: str
    filter_tree: _query_pb2.QueryNode
    query: str
    query_tree: _query_pb2.Query
    ranking: _query_pb2.Ranking
    vector_weight: float
    text_weight: float
    explain: bool
    texts: _containers.RepeatedScalarFieldContainer[str]
    images: _containers.RepeatedScalarFieldContainer[bytes]
    vectors_model: str
    allow_partial: bool
    columns: bool
    oversample: int
    timeout_s: float
    def __init__(self, collection: _Optional[str] = ..., vectors: _Optional[_Union[_common_pb2.FloatMatrix, _Mapping]] = ..., k: _Optional[int] = ..., ef: _Optional[int] = ..., with_payload: _Optional[bool] = ..., filter: _Optional[str] = ..., filter_tree: _Optional[_Union[_query_pb2.QueryNode, _Mapping]] = ..., query: _Optional[str] = ..., query_tree: _Optional[_Union[_query_pb2.Query, _Mapping]] = ..., ranking: _Optional[_Union[_query_pb2.Ranking, str]] = ..., vector_weight: _Optional[float] = ..., text_weight: _Optional[float] = ..., explain: _Optional[bool] = ..., texts: _Optional[_Iterable[str]] = ..., images: _Optional[_Iterable[bytes]] = ..., vectors_model: _Optional[str] = ..., allow_partial: _Optional[bool] = ..., columns: _Optional[bool] = ..., oversample: _Optional[int] = ..., timeout_s: _Optional[float] = ...) -> None: ...

class QueryResult(_message.Message):
    __slots__ = ("hits",)
    HITS_FIELD_NUMBER: _ClassVar[int]
    hits: _containers.RepeatedCompositeFieldContainer[_common_pb2.Hit]
    def __init__(self, hits: _Optional[_Iterable[_Union[_common_pb2.Hit, _Mapping]]] = ...) -> None: ...

class SearchColumns(_message.Message):
    __slots__ = ("offsets", "ids", "scores", "distances", "payloads")
    OFFSETS_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    DISTANCES_FIELD_NUMBER: _ClassVar[int]
    PAYLOADS_FIELD_NUMBER: _ClassVar[int]
    offsets: _containers.RepeatedScalarFieldContainer[int]
    ids: _containers.RepeatedScalarFieldContainer[str]
    scores: bytes
    distances: bytes
    payloads: _containers.RepeatedCompositeFieldContainer[_common_pb2.Payload]
    def __init__(self, offsets: _Optional[_Iterable[int]] = ..., ids: _Optional[_Iterable[str]] = ..., scores: _Optional[bytes] = ..., distances: _Optional[bytes] = ..., payloads: _Optional[_Iterable[_Union[_common_pb2.Payload, _Mapping]]] = ...) -> None: ...

class SearchResponse(_message.Message):
    __slots__ = ("results", "columns", "plans", "missing_shards", "error_code", "error")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    PLANS_FIELD_NUMBER: _ClassVar[int]
    MISSING_SHARDS_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[QueryResult]
    columns: SearchColumns
    plans: _containers.RepeatedCompositeFieldContainer[_query_pb2.QueryPlan]
    missing_shards: _containers.RepeatedScalarFieldContainer[int]
    error_code: int
    error: str
    def __init__(self, results: _Optional[_Iterable[_Union[QueryResult, _Mapping]]] = ..., columns: _Optional[_Union[SearchColumns, _Mapping]] = ..., plans: _Optional[_Iterable[_Union[_query_pb2.QueryPlan, _Mapping]]] = ..., missing_shards: _Optional[_Iterable[int]] = ..., error_code: _Optional[int] = ..., error: _Optional[str] = ...) -> None: ...

class CompactRequest(_message.Message):
    __slots__ = ("collection", "shards", "hnsw", "wait")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    HNSW_FIELD_NUMBER: _ClassVar[int]
    WAIT_FIELD_NUMBER: _ClassVar[int]
    collection: str
    shards: _containers.RepeatedScalarFieldContainer[int]
    hnsw: _common_pb2.HnswParams
    wait: bool
    def __init__(self, collection: _Optional[str] = ..., shards: _Optional[_Iterable[int]] = ..., hnsw: _Optional[_Union[_common_pb2.HnswParams, _Mapping]] = ..., wait: _Optional[bool] = ...) -> None: ...

class CompactResponse(_message.Message):
    __slots__ = ("scheduled", "shard_info")
    SCHEDULED_FIELD_NUMBER: _ClassVar[int]
    SHARD_INFO_FIELD_NUMBER: _ClassVar[int]
    scheduled: _containers.RepeatedScalarFieldContainer[int]
    shard_info: _containers.RepeatedCompositeFieldContainer[ShardInfo]
    def __init__(self, scheduled: _Optional[_Iterable[int]] = ..., shard_info: _Optional[_Iterable[_Union[ShardInfo, _Mapping]]] = ...) -> None: ...
