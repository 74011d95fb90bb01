"""The `shoal` command: run a local cluster, manage collections, ingest and search."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np

from shoal.client import DEFAULT_ADDRESS, Client, Hit
from shoal.errors import ShoalError
from shoal.ingest import (
    IMAGE_SUFFIXES,
    TEXT_SUFFIXES,
    VECTOR_BATCH,
    IngestError,
    Ingestor,
    count_lines,
    folder_files,
    iter_folder,
    iter_jsonl,
)

PAYLOAD_PREVIEW_CHARS = 70
PREVIEW_FIRST = ("section", "summary", "title", "name")  # payload fields most telling in one line


def _client(args: argparse.Namespace) -> Client:
    return Client(args.address, tls_ca=args.tls_ca, api_key=args.api_key, tls_server_name=args.tls_server_name)


# ---- serve ---------------------------------------------------------------------------------
def cmd_serve(args: argparse.Namespace) -> int:
    """Run Ray, the shard actors and the coordinator here until Ctrl-C, then stop them all."""
    from shoal.demo import DEMO_COLLECTION, load_demo
    from shoal.demo_emoji import EMOJI_COLLECTION, IMAGES_DIR, MEDIA_NAME, load_emoji_demo
    from shoal.serve import LocalCluster, LocalSecurity

    port = int(args.address.rsplit(":", 1)[1])
    ca = args.tls_ca or os.environ.get("SHOAL_TLS_CA", "")
    if args.tls_cert and not (args.tls_key and ca):
        raise SystemExit("shoal serve: TLS needs --tls-cert, --tls-key and --tls-ca (the CA that signed them)")
    security = (LocalSecurity(ca, args.tls_cert, args.tls_key, client_cert=args.internal_tls_cert,
                              client_key=args.internal_tls_key, api_keys_file=args.api_keys_file)
                if args.tls_cert else None)
    # Without TLS the keys still apply (keys in plaintext are for loopback only).
    security_args = [f"--api-keys-file={args.api_keys_file}"] if args.api_keys_file and security is None else []
    cluster = LocalCluster(args.data_dir, port=port, ray_address=args.ray_address, echo=args.verbose,
                           metrics_port=args.metrics_port, security=security, coordinator_args=security_args,
                           gateway=args.gateway_port >= 0, gateway_port=max(args.gateway_port, 0),
                           gateway_args=[f"--media={MEDIA_NAME}={IMAGES_DIR}"])
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    print(f"starting Shoal: data in {Path(args.data_dir).resolve()}, logs in {cluster.data_dir / 'logs'}",
          file=sys.stderr)
    try:
        try:
            cluster.start()
        except (RuntimeError, TimeoutError) as exc:
            log = cluster.data_dir / "logs" / "coordinator.log"
            tail = log.read_text(errors="replace").splitlines()[-15:] if log.exists() else []
            print(f"Shoal did not start: {exc}", *tail, sep="\n", file=sys.stderr)
            return 1
        print(f"coordinator listening on {cluster.address} (Ray at {cluster.ray_address})", file=sys.stderr)
        if cluster.sd_file is not None:
            print(f"metrics: http://127.0.0.1:{cluster.metrics_port}/metrics (coordinator), "
                  f"http://127.0.0.1:{cluster.embedder_metrics_port}/metrics (embedder); shard targets: "
                  f"file-SD {cluster.sd_file}, HTTP-SD http://127.0.0.1:{cluster.metrics_port}/sd/shards",
                  file=sys.stderr)
        if cluster.gateway_url:
            print(f"console: {cluster.gateway_url}/console/  REST API: {cluster.gateway_url}/v1 "
                  f"(OpenAPI {cluster.gateway_url}/openapi.json, docs {cluster.gateway_url}/docs)", file=sys.stderr)
        if not args.no_demo and not stop.is_set():
            with _client(args) as client:
                count = load_demo(client, live=args.demo_live)
                print(f"demo collection {DEMO_COLLECTION!r} holds {count} documents; try:\n"
                      f"  shoal search '파이썬 HTTP 클라이언트 라이브러리'\n"
                      f"  shoal search 'python http client library'", file=sys.stderr)
                emoji = load_emoji_demo(client)
                print(f"demo collection {EMOJI_COLLECTION!r} holds {emoji} images: search it by image in the console",
                      file=sys.stderr)
        print("Shoal is up. Ctrl-C stops it.", file=sys.stderr)
        while not stop.wait(1.0):
            if cluster.wait_nonblocking() is not None:
                print("the coordinator exited; stopping", file=sys.stderr)
                return 1
    finally:
        print("stopping Shoal ...", file=sys.stderr)
        cluster.stop()
    return 0


# ---- collections ---------------------------------------------------------------------------
def cmd_collections(args: argparse.Namespace) -> int:
    """List collections with their size."""
    with _client(args) as client:
        rows = [("NAME", "DIM", "METRIC", "SHARDS", "COUNT")]
        for c in client.list_collections():
            rows.append((c.name, str(c.dim), c.metric, str(c.shards), str(client.count(c.name))))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
    return 0


def cmd_create(args: argparse.Namespace) -> int:
    """Create a collection."""
    fields = dict(_field_spec(f) for f in args.field)
    with _client(args) as client:
        c = client.create_collection(args.name, dim=args.dim, metric=args.metric, shards=args.shards,
                                     model=args.model, chunk_words=args.chunk_words, chunk_overlap=args.chunk_overlap,
                                     fields=fields, replication_factor=args.replicas,
                                     write_consistency=args.write_consistency, embed_fields=args.embed_field,
                                     storage=args.storage)
    bound = f", model {c.model} ({c.modality})" if c.model else ""
    indexed = ", ".join(f"{k} ({v})" for k, v in sorted(c.fields.items())) or "no payload fields"
    copies = (f", {c.replication_factor} replicas (writes need {c.write_consistency})"
              if c.replication_factor > 1 else "")
    print(f"created {c.name}: dim {c.dim}, {c.metric}, {c.storage}, {c.shards} shards{copies}{bound}; "
          f"indexes {indexed}")
    return 0


def cmd_update(args: argparse.Namespace) -> int:
    """Change a collection's write consistency."""
    with _client(args) as client:
        c = client.update_collection(args.name, write_consistency=args.write_consistency)
    print(f"{c.name}: writes are acknowledged once {c.write_consistency} of {c.replication_factor} replicas have them")
    return 0


def _field_spec(text: str) -> tuple[str, str]:
    name, sep, ftype = text.partition(":")
    if not sep or not name or not ftype:
        raise SystemExit(f"--field takes NAME:TYPE (e.g. section:keyword), got {text!r}")
    return name, ftype


def cmd_drop(args: argparse.Namespace) -> int:
    """Drop a collection."""
    with _client(args) as client:
        client.drop_collection(args.name)
    print(f"dropped {args.name}")
    return 0


def cmd_snapshot(args: argparse.Namespace) -> int:
    """Back a collection up into a directory on the coordinator's machine."""
    with _client(args) as client:
        r = client.snapshot(args.name, os.path.abspath(args.directory))
    print(f"backed up {args.name}: {r['documents']} documents, {len(r['shards'])} shards, {r['bytes']} bytes "
          f"in {r['seconds']:.1f} s; manifest {r['manifest']}")
    for sh in r["shards"]:
        print(f"  shard {sh['index']} (replica {sh['replica']}): {sh['documents']} documents at LSN {sh['lsn']}, "
              f"checksum {sh['checksum']}")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    """Create a collection from a backup directory on the coordinator's machine."""
    with _client(args) as client:
        c = client.restore(os.path.abspath(args.directory), name=args.name, shards=args.shards)
        count = client.count(c.name)
    print(f"restored {c.name}: {count} documents, dim {c.dim}, {c.metric}, {c.shards} shards")
    return 0


def cmd_count(args: argparse.Namespace) -> int:
    """Print a collection's live document count."""
    with _client(args) as client:
        print(client.count(args.name))
    return 0


def cmd_get(args: argparse.Namespace) -> int:
    """Print stored documents as JSON lines."""
    with _client(args) as client:
        for d in client.get(args.name, args.ids, with_vectors=args.vectors):
            out: dict[str, Any] = {"id": d.id, "payload": d.payload}
            if d.vector is not None:
                out["vector"] = d.vector.tolist()
            print(json.dumps(out, ensure_ascii=False))
    return 0


# ---- ingest --------------------------------------------------------------------------------
def cmd_ingest(args: argparse.Namespace) -> int:
    """Stream a folder of text and image files (model-bound collection) or a JSON-lines file into a collection;
    what is already stored with the same content is skipped, so an interrupted run resumes."""
    path = Path(args.file)
    if not path.exists():
        raise SystemExit(f"{path} does not exist")
    with _client(args) as client:
        exists = any(c.name == args.collection for c in client.list_collections())
        if (args.create_dim or args.create_model) and not exists:   # a resumed run finds it made
            client.create_collection(args.collection, dim=args.create_dim, metric=args.metric, shards=args.shards,
                                     model=args.create_model)
        ingestor = Ingestor(client, args.collection, resume=not args.no_resume, in_flight=args.in_flight,
                            vector_batch=args.batch, embed_batch=args.embed_batch)
        if path.is_dir():
            files = folder_files(path)
            if not files:
                raise SystemExit(f"{path} holds no text ({', '.join(TEXT_SUFFIXES)}) or image "
                                 f"({', '.join(IMAGE_SUFFIXES)}) files")
            items, total, unit = iter_folder(files), len(files), "files"
        else:
            items, total, unit = iter_jsonl(path), count_lines(path), "documents"
        try:
            report = ingestor.run(items, total, f"ingest {path.name or path}")
        except IngestError as exc:
            raise SystemExit(str(exc)) from None
    rate = (report.written + report.skipped) / max(report.seconds, 1e-9)
    print(f"upserted {report.written} {unit} into {args.collection} ({report.skipped} already stored unchanged, "
          f"skipped) in {report.seconds:.1f} s, {rate:.1f}/s")
    return 0


# ---- search --------------------------------------------------------------------------------
def _query_vector(args: argparse.Namespace, client: Client) -> np.ndarray:
    if args.vector:
        return np.asarray(json.loads(args.vector), dtype=np.float32)
    docs = client.get(args.collection, [args.like], with_vectors=True)
    if not docs:
        raise SystemExit(f"no document {args.like!r} in {args.collection}")
    return docs[0].vector


def _print_hits(hits: list[Hit]) -> None:
    for rank, h in enumerate(hits, 1):
        first = {k: h.payload[k] for k in PREVIEW_FIRST if k in h.payload}
        preview = json.dumps({**first, **dict(sorted(h.payload.items()))}, ensure_ascii=False)
        if len(preview) > PAYLOAD_PREVIEW_CHARS:
            preview = preview[:PAYLOAD_PREVIEW_CHARS - 3] + "..."
        print(f"{rank:>3}  {h.score:8.4f}  {h.id:<32}  {preview}")


def cmd_search(args: argparse.Namespace) -> int:
    """Search a collection by text or an image (model-bound collections), a vector, or a stored document."""
    if sum(bool(x) for x in (args.vector, args.like, args.text, args.image)) != 1:
        raise SystemExit("give exactly one of QUERY text, --image, --vector or --like")
    with _client(args) as client:
        if args.text or args.image:
            image = Path(args.image).read_bytes() if args.image else None
            hits, plan = client.explain(args.collection, text=args.text or None, image=image, k=args.k, ef=args.ef,
                                        filter=args.filter or None, explain=args.explain)
        else:
            vectors_model = client.describe_collection(args.collection).model if args.like else ""
            hits, plan = client.explain(args.collection, _query_vector(args, client), k=args.k, ef=args.ef,
                                        vectors_model=vectors_model, filter=args.filter or None,
                                        explain=args.explain)
    _show(args, hits, plan)
    return 0


def _show(args: argparse.Namespace, hits: list[Hit], plan: dict[str, Any]) -> None:
    if args.json:
        print(json.dumps([h.__dict__ for h in hits], ensure_ascii=False))
    else:
        _print_hits(hits)
    if plan:
        print(json.dumps(plan, indent=1, ensure_ascii=False), file=sys.stderr)


def cmd_query(args: argparse.Namespace) -> int:
    """Run a whole query string: filters, near and full-text clauses, ranking included."""
    with _client(args) as client:
        hits, plan = client.explain(args.collection, query=args.query, k=args.k, ef=args.ef,
                                    ranking=args.ranking, explain=args.explain,
                                    weights=(args.vector_weight, args.text_weight))
    _show(args, hits, plan)
    return 0


# ---- wiring --------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the `shoal` command."""
    p = argparse.ArgumentParser(prog="shoal", description="Shoal vector search cluster")
    p.add_argument("--address", default=os.environ.get("SHOAL_ADDRESS", DEFAULT_ADDRESS),
                   help="coordinator host:port [env SHOAL_ADDRESS]")
    p.add_argument("--tls-ca", default=None,
                   help="PEM CA that signed the coordinator's certificate; set = connect over TLS [env SHOAL_TLS_CA]")
    p.add_argument("--tls-server-name", default=None,
                   help="name expected in the coordinator's certificate (default: the address's host) "
                        "[env SHOAL_TLS_SERVER_NAME]")
    p.add_argument("--api-key", default=None,
                   help="API key sent with every call (prefer the env: flags show in `ps`) [env SHOAL_API_KEY]")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="run a local cluster in the foreground (Ctrl-C stops everything)")
    s.add_argument("--data-dir", default=os.environ.get("SHOAL_DATA_DIR", ".shoal-data"))
    s.add_argument("--ray-address", default=os.environ.get("SHOAL_RAY_ADDRESS", ""),
                   help="join this Ray cluster instead of starting a local one [env SHOAL_RAY_ADDRESS]")
    s.add_argument("--no-demo", action="store_true", help="do not create the demo collection")
    s.add_argument("--demo-live", action="store_true",
                   help="embed the demo sample through the embedder (~20 min) instead of loading its bundled vectors")
    s.add_argument("--verbose", action="store_true", help="echo the coordinator's and Ray's logs")
    s.add_argument("--tls-cert", default="", help="PEM server certificate for the coordinator, embedder and shards "
                                                  "(needs --tls-key and the global --tls-ca)")
    s.add_argument("--tls-key", default="", help="PEM private key of --tls-cert")
    s.add_argument("--internal-tls-cert", default="",
                   help="PEM client certificate of the coordinator; set = shards and embedder require it (mutual TLS)")
    s.add_argument("--internal-tls-key", default="", help="PEM private key of --internal-tls-cert")
    s.add_argument("--api-keys-file", default="",
                   help="'<read-only|read-write> <key>' lines; set = every call needs a key (load the demo with "
                        "--api-key or SHOAL_API_KEY of a read-write key)")
    s.add_argument("--metrics-port", type=int, default=int(os.environ.get("SHOAL_METRICS_PORT", "9464")),
                   help="coordinator metrics port; the embedder's is the next one (-1 = no metrics) "
                        "[env SHOAL_METRICS_PORT]")
    s.add_argument("--gateway-port", type=int, default=int(os.environ.get("SHOAL_GATEWAY_PORT", "8080")),
                   help="port of the HTTP gateway (REST API and console) on 127.0.0.1 (0 = any free one, -1 = none) "
                        "[env SHOAL_GATEWAY_PORT]")
    s.set_defaults(fn=cmd_serve)

    sub.add_parser("collections", help="list collections").set_defaults(fn=cmd_collections)

    s = sub.add_parser("create", help="create a collection")
    s.add_argument("name")
    s.add_argument("--dim", type=int, default=0, help="vector dimension (0: the model's)")
    s.add_argument("--model", default="", help="bind to an embedding model (name@version) to upsert/search text")
    s.add_argument("--chunk-words", type=int, default=0, help="words per text chunk (model-bound; 0 = default)")
    s.add_argument("--chunk-overlap", type=int, default=0, help="words shared by neighbouring chunks")
    s.add_argument("--metric", default="cosine", choices=["cosine", "l2", "ip"])
    s.add_argument("--shards", type=int, default=0)
    s.add_argument("--storage", default="", help="how vectors are kept: float32 (default), float16, int8 or binary "
                                                 "(1 bit per dimension, rescored from float16)")
    s.add_argument("--field", action="append", default=[], metavar="NAME:TYPE",
                   help="index a payload field: keyword, tags, int, float, datetime, bool, text "
                        "(text:english) or text:korean (repeatable)")
    s.add_argument("--replicas", type=int, default=0, help="copies of every shard (0 = 1)")
    s.add_argument("--write-consistency", type=int, default=None, metavar="W",
                   help="replicas a write needs before it is acknowledged (default: 1 up to 2 replicas, a majority "
                        "above)")
    s.add_argument("--embed-field", action="append", default=[], metavar="NAME",
                   help="model-bound: also embed this string payload field (e.g. a translation) as further "
                        "entries of each document (repeatable)")
    s.set_defaults(fn=cmd_create)

    s = sub.add_parser("update", help="change a collection's settings (write consistency)")
    s.add_argument("name")
    s.add_argument("--write-consistency", type=int, required=True, metavar="W",
                   help="replicas a write needs before it is acknowledged: 1 .. the replication factor")
    s.set_defaults(fn=cmd_update)

    s = sub.add_parser("drop", help="drop a collection and its data")
    s.add_argument("name")
    s.set_defaults(fn=cmd_drop)

    s = sub.add_parser("snapshot", help="back a collection up, online, into a directory on the coordinator's "
                                        "machine (a new or empty one)")
    s.add_argument("name")
    s.add_argument("directory", help="where the backup goes, on the coordinator's machine (relative paths are "
                                     "made absolute here)")
    s.set_defaults(fn=cmd_snapshot)

    s = sub.add_parser("restore", help="create a collection from a backup directory on the coordinator's machine")
    s.add_argument("directory")
    s.add_argument("--name", default="", help="name of the new collection (default: the backed-up one's)")
    s.add_argument("--shards", type=int, default=0,
                   help="shard count to restore into; only the backup's own is accepted (default)")
    s.set_defaults(fn=cmd_restore)

    s = sub.add_parser("count", help="live documents in a collection")
    s.add_argument("name")
    s.set_defaults(fn=cmd_count)

    s = sub.add_parser("get", help="print documents by id")
    s.add_argument("name")
    s.add_argument("ids", nargs="+")
    s.add_argument("--vectors", action="store_true")
    s.set_defaults(fn=cmd_get)

    s = sub.add_parser("ingest", help="stream a folder of text/image files, or a JSON-lines file of "
                                      "{id, vector|text|image, payload}, into a collection (resumable)")
    s.add_argument("file", help="a folder (model-bound collection) or a .jsonl file")
    s.add_argument("--no-resume", action="store_true", help="write everything again, even what is stored unchanged")
    s.add_argument("--in-flight", type=int, default=3, help="upserts at once (keeps the embedder busy)")
    s.add_argument("--embed-batch", type=int, default=64, help="documents per upsert that the coordinator embeds")
    s.add_argument("--create-model", default="", help="create the collection first, bound to this model")
    s.add_argument("--collection", "-c", required=True)
    s.add_argument("--create-dim", type=int, default=0, help="create the collection first with this dim")
    s.add_argument("--metric", default="cosine", choices=["cosine", "l2", "ip"])
    s.add_argument("--shards", type=int, default=0)
    s.add_argument("--batch", type=int, default=VECTOR_BATCH, help="documents per upsert when they carry vectors")
    s.set_defaults(fn=cmd_ingest)

    s = sub.add_parser("search", help="nearest documents to a vector, a document or words")
    s.add_argument("text", nargs="?", default="", help="query text (model-bound collections)")
    s.add_argument("--image", help="query image file (collections bound to an image model)")
    s.add_argument("--collection", "-c", default="debian")
    s.add_argument("--vector", help="query vector as a JSON list")
    s.add_argument("--like", help="use the vector of this stored document id")
    s.add_argument("-k", type=int, default=10)
    s.add_argument("--ef", type=int, default=None)
    s.add_argument("--filter", default="", help="query string the hits must pass, e.g. 'section:python'")
    s.add_argument("--explain", action="store_true", help="print the plan (to stderr)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_search)

    s = sub.add_parser("query", help="run a query string (filters, near, full text; see README 'Queries')")
    s.add_argument("query", help="e.g. 'section:games AND text_en:\"chess\" AND installed_size_kb<5000'")
    s.add_argument("--collection", "-c", default="debian")
    s.add_argument("-k", type=int, default=10)
    s.add_argument("--ef", type=int, default=None)
    s.add_argument("--ranking", choices=["vector", "bm25", "hybrid"], default=None)
    s.add_argument("--vector-weight", type=float, default=0.0, help="RRF weight of the vector ranking (hybrid)")
    s.add_argument("--text-weight", type=float, default=0.0, help="RRF weight of the BM25 ranking (hybrid)")
    s.add_argument("--explain", action="store_true", help="print the plan (to stderr)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_query)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `shoal` console script."""
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except ShoalError as exc:
        print(f"error ({type(exc).__name__}): {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
