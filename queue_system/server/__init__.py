"""The HTTP server: the queue's API over FastAPI, run by uvicorn."""

from .app import create_app

__all__ = ["create_app"]
