"""Serving: the champion behind a FastAPI app, with metrics and a request log."""
