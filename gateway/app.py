"""The gateway's HTTP application: REST routes over the SDK, the console's static files and media folders."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

import fastapi_offline
from fastapi import APIRouter, Depends, FastAPI, Header, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from gateway import conversions as cv
from gateway import errors
from gateway.body_limit import BodyLimit
from gateway.clients import ClientPool, bearer_key
from gateway.errors import GatewayError
from gateway.hot_path import HotPath
from gateway.search import search_json
from gateway.settings import API_PREFIX, GatewaySettings
from shoal.client import Backup, Client, Collection

STATIC_DIR = Path(__file__).resolve().parent / "static"
# Swagger UI's files from the fastapi-offline wheel: FastAPI's own /docs page loads them from a CDN, which a
# machine without internet (or a careful operator) does not reach.
DOCS_ASSETS_DIR = Path(fastapi_offline.__file__).resolve().parent / "static"
DOCS_ASSETS_URL = "/docs-assets"
TITLE = "Shoal REST API"
_REFUSALS: dict[int | str, dict[str, Any]] = {
    status: {"model": cv.ErrorBody, "description": text} for status, text in (
        (400, "bad request: malformed JSON, a wrong dimension, a bad query string (with its position), ..."),
        (401, "no API key, or an unknown one"), (403, "the API key's role may not do this"),
        (404, "unknown collection"), (413, "the body is larger than max_body_bytes"),
        (429, "a limit of the coordinator"), (503, "a shard or the coordinator is unavailable"))}


AuthHeader = Annotated[str, Header(description="Bearer <API key>, passed on to the coordinator")]


async def _client(request: Request, authorization: AuthHeader = "") -> Client:
    # async: a plain def dependency would cost every request a second hop through the thread pool.
    return request.app.state.pool.for_key(bearer_key(authorization))


Sdk = Annotated[Client, Depends(_client)]


def _router() -> APIRouter:
    r = APIRouter(prefix=API_PREFIX, responses=_REFUSALS)

    # Served by the HotPath in front of FastAPI (which never sees these requests); the route is here for the
    # OpenAPI document, and answers the same should it be reached.
    @r.post("/collections/{name}/search", response_model=cv.SearchOut, tags=["search"])
    async def search(request: Request, name: str, body: cv.SearchBody, authorization: AuthHeader = "") -> Response:
        """The k best documents for a vector, text, image or query string; with explain, the plan too."""
        return Response(await search_json(request.app.state.pool, name, body, authorization),
                        media_type="application/json")

    @r.get("/collections", response_model=cv.CollectionsOut, tags=["collections"])
    def list_collections(c: Sdk) -> Any:
        """Every collection's settings."""
        return {"collections": [cv.collection_out(x) for x in c.list_collections()]}

    @r.post("/collections", response_model=Collection, status_code=201, tags=["collections"])
    def create_collection(body: cv.CreateCollectionBody, c: Sdk) -> Any:
        """Create a collection."""
        return cv.collection_out(c.create_collection(**body.model_dump()))

    @r.get("/collections/{name}", response_model=Collection, tags=["collections"])
    def describe_collection(name: str, c: Sdk, allow_partial: bool = False) -> Any:
        """A collection's settings, live count and per-shard-replica figures."""
        return cv.collection_out(c.describe_collection(name, allow_partial=allow_partial))

    @r.delete("/collections/{name}", response_model=cv.DroppedOut, tags=["collections"])
    def drop_collection(name: str, c: Sdk) -> Any:
        """Delete a collection and all its data."""
        c.drop_collection(name)
        return {"dropped": name}

    @r.patch("/collections/{name}", response_model=Collection, tags=["collections"])
    def update_collection(name: str, body: cv.UpdateCollectionBody, c: Sdk) -> Any:
        """Change a collection's settings (today: its write consistency); answers the settings."""
        return cv.collection_out(c.update_collection(name, write_consistency=body.write_consistency))

    @r.post("/collections/{name}/snapshot", response_model=Backup, tags=["backup"])
    def snapshot(name: str, body: cv.SnapshotBody, c: Sdk) -> Any:
        """Back a collection up online into a directory on the coordinator's machine; answers when it is written."""
        return c.snapshot(name, body.directory)

    @r.post("/restore", response_model=Collection, status_code=201, tags=["backup"])
    def restore(body: cv.RestoreBody, c: Sdk) -> Any:
        """Create a collection from a backup directory on the coordinator's machine (damaged files are refused)."""
        return cv.collection_out(c.restore(body.directory, name=body.name, shards=body.shards))

    @r.post("/collections/{name}/compact", response_model=cv.CompactOut, tags=["collections"])
    def compact(name: str, body: cv.CompactBody, c: Sdk) -> Any:
        """Rebuild the HNSW index of the collection's shards (all, or those listed)."""
        return {"shards": c.compact(name, shards=body.shards, m=body.m, ef_construction=body.ef_construction,
                                    wait=body.wait)}

    @r.post("/collections/{name}/documents", response_model=cv.UpsertedOut, tags=["documents"])
    def upsert(name: str, body: cv.UpsertBody, c: Sdk) -> Any:
        """Insert or replace documents (vectors, or texts / base64 images for a bound collection)."""
        return {"upserted": c.upsert(name, **cv.upsert_args(body))}

    @r.post("/collections/{name}/documents/get", response_model=cv.DocumentsOut, tags=["documents"])
    def get_documents(name: str, body: cv.GetBody, c: Sdk) -> Any:
        """Stored documents among the ids, in the order asked."""
        return {"documents": [cv.document_out(d) for d in c.get(name, body.ids, with_vectors=body.with_vectors)]}

    @r.get("/collections/{name}/documents/{doc_id}", response_model=cv.DocumentOut, tags=["documents"])
    def get_document(name: str, doc_id: str, c: Sdk, with_vectors: bool = False) -> Any:
        """One stored document (404 when it does not exist)."""
        docs = c.get(name, [doc_id], with_vectors=with_vectors)
        if not docs:
            raise GatewayError(404, "NOT_FOUND", f"document {doc_id!r} is not in collection {name!r}")
        return cv.document_out(docs[0])

    @r.post("/collections/{name}/documents/delete", response_model=cv.DeletedOut, tags=["documents"])
    def delete(name: str, body: cv.IdsBody, c: Sdk) -> Any:
        """Delete documents; answers how many existed."""
        return {"deleted": c.delete(name, body.ids)}

    @r.get("/collections/{name}/count", response_model=cv.CountOut, tags=["documents"])
    def count(name: str, c: Sdk) -> Any:
        """Live documents."""
        return {"count": c.count(name)}

    return r


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document, with FastAPI's 422 replaced by the 400 the gateway really answers."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=TITLE, version="1", routes=app.routes,
                         description="REST/JSON face of a Shoal cluster; every call is one coordinator RPC.")
    for path in schema.get("paths", {}).values():
        for op in path.values():
            op.get("responses", {}).pop("422", None)
    for unused in ("HTTPValidationError", "ValidationError"):
        schema.get("components", {}).get("schemas", {}).pop(unused, None)
    app.openapi_schema = schema
    return schema


def _media(app: FastAPI, dirs: dict[str, Path]) -> None:
    @app.get("/media/{folder}/{filename}", include_in_schema=False)
    def media(folder: str, filename: str) -> FileResponse:
        root = dirs.get(folder)
        path = (root / filename).resolve() if root else None
        if path is None or path.parent != root or not path.is_file():
            raise GatewayError(404, "NOT_FOUND", f"no media file {folder}/{filename}")
        return FileResponse(path, headers={"cache-control": "public, max-age=86400"})


def create_app(settings: GatewaySettings, pool: ClientPool | None = None) -> Any:
    """The ASGI application: the hot routes, then FastAPI behind the body-size limit."""
    pool = pool or ClientPool(settings)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        pool.close()

    app = FastAPI(title=TITLE, version="1", docs_url=None, redoc_url=None, lifespan=lifespan)
    errors.install(app)
    app.include_router(_router())
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{TITLE}: interactive docs",
                                   swagger_js_url=f"{DOCS_ASSETS_URL}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{DOCS_ASSETS_URL}/swagger-ui.css",
                                   swagger_favicon_url=f"{DOCS_ASSETS_URL}/favicon.png")

    app.mount(DOCS_ASSETS_URL, StaticFiles(directory=DOCS_ASSETS_DIR), name="docs-assets")

    @app.get("/", include_in_schema=False)
    def index() -> RedirectResponse:
        return RedirectResponse("/console/")

    _media(app, settings.media_dirs())
    app.mount("/console", StaticFiles(directory=STATIC_DIR, html=True), name="console")
    app.state.pool = pool
    return HotPath(BodyLimit(app, settings.max_body_bytes), pool, settings.max_body_bytes)
