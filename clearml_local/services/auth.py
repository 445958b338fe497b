"""auth.*: the token the SDK logs in for, and the credentials the embedded server knows."""

from __future__ import annotations

from typing import Any

from clearml_local.api import Context, endpoint


@endpoint("auth.login")
def login(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    return {"token": ctx.authenticator.issue_token(ctx.identity, body.get("expiration_sec"))}


@endpoint("auth.get_credentials")
def get_credentials(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    creds = ctx.authenticator.credentials
    return {"credentials": [{"access_key": creds.access_key, "label": "embedded backend"}]}
