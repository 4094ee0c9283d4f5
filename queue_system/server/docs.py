"""The API's documentation page, ``/docs``, with nothing loaded from the network.

FastAPI's own ``/docs`` fetches Swagger UI from a CDN: in a classroom with
no internet it is a blank page. Here Swagger UI's files come from the
``swagger-ui-bundle-v2`` package (pinned in requirements.txt, Apache 2.0
licence in its distribution): the three files the page uses, under
``/docs/assets/``. ReDoc (``/redoc``), which no package ships for offline
use, is not served.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import FileResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from swagger_ui_bundle import swagger_ui_path

ASSETS = "/docs/assets"


# The only files /docs uses (the package also ships a demo page that fetches its example
# from the internet: not served).
FILES = {"swagger-ui-bundle.js": "text/javascript", "swagger-ui.css": "text/css",
         "favicon-32x32.png": "image/png"}


def install_docs(app: FastAPI) -> None:
    """Serve ``/docs`` and its files on ``app``, which must have ``docs_url=None``."""
    api = APIRouter(include_in_schema=False)

    @api.get("/docs")
    async def docs():
        return get_swagger_ui_html(
            openapi_url="/openapi.json", title=f"{app.title}: the API",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon-32x32.png",
            oauth2_redirect_url="/docs/oauth2-redirect")

    @api.get("/docs/oauth2-redirect")
    async def oauth2_redirect():
        return get_swagger_ui_oauth2_redirect_html()

    @api.get(ASSETS + "/{name}")
    async def asset(name: str):
        if name not in FILES:
            raise StarletteHTTPException(404, f"no file {name!r} here")
        return FileResponse(Path(str(swagger_ui_path)) / name, media_type=FILES[name],
                            headers={"Cache-Control": "max-age=86400"})

    app.include_router(api)
