"""`python -m bench.bare`: the reference every throughput ratio divides by. A bare FastAPI app
with one endpoint answering `{"ok": true}`, served exactly as the product is (one uvicorn
worker, uvloop + httptools, no server header, no access log, no logging setup), so a ratio to it
is the share of the framework's own limit that the product keeps."""

from __future__ import annotations

import os
import sys

import uvicorn
from fastapi import FastAPI

PATH = "/bench/noop"

app = FastAPI()


@app.get(PATH)
async def ok() -> dict[str, bool]:
    return {"ok": True}


def main() -> int:
    uvicorn.run(
        app,
        host=os.environ.get("HOST", "127.0.0.1"),
        port=int(os.environ["PORT"]),
        loop="uvloop",
        http="httptools",
        workers=1,
        log_config=None,
        access_log=False,
        server_header=False,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
