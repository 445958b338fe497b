"""An ASGI app for the feedback tests: serving_local's feedback route (configured from the environment, as
the stack's inference app is) around a stand-in for clearml-serving that answers `/serve/...` with 200."""

from __future__ import annotations

import json
from typing import Any

from serving_local.feedback_route import with_feedback_route


async def serving_stand_in(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = json.dumps({"path": scope["path"]}).encode()
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
    )
    await send({"type": "http.response.body", "body": body})


app = with_feedback_route(serving_stand_in)
