"""The same framework and server with no work behind the endpoint: the ceiling our chat figures are compared to."""

from __future__ import annotations

import sys

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def chat(request: Request) -> JSONResponse:
    payload = await request.json()
    return JSONResponse({"replies": [{"text": str(payload.get("text", "")), "options": []}]})


async def healthz(_: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


app = Starlette(routes=[Route("/api/chat", chat, methods=["POST"]), Route("/healthz", healthz)])

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
