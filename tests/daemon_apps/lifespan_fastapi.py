"""A FastAPI app whose lifespan yields state (Starlette's lifespan state): served by
``type: http``, its requests see that state in ``request.state``, as under uvicorn alone."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
    yield {"greeting": "hello from the lifespan"}
    Path(os.environ["LIFESPAN_LOG"]).write_text("shut down\n")  # noqa: ASYNC240 (a test app)


application = FastAPI(lifespan=lifespan)


@application.get("/greeting")
async def greeting(request: Request) -> dict[str, str]:
    return {"greeting": request.state.greeting}
