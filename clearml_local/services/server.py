"""Server-level endpoints: liveness, server info, users, and the empty answers of features we do not run."""

from __future__ import annotations

from typing import Any

from clearml_local.api import Context, endpoint
from clearml_local.auth_tokens import API_VERSION, SERVER_VERSION


@endpoint("debug.ping")
def ping(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    return {"msg": "ClearML embedded backend is running"}


@endpoint("server.info")
def info(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": SERVER_VERSION,
        "api_version": API_VERSION,
        "build": "embedded",
        "uid": "clearml-local",
    }


@endpoint("users.get_current_user")
def current_user(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    ident = ctx.identity
    return {
        "user": {
            "id": ident.user_id,
            "name": ident.user_name,
            "company": {"id": ident.company_id, "name": ident.company_name},
            "role": ident.role,
            "preferences": {},
        },
        "getting_started": {},
        "settings": {"max_download_items": 1000},
    }


@endpoint("users.get_all", "users.get_all_ex")
def all_users(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    ident = ctx.identity
    return {"users": [{"id": ident.user_id, "name": ident.user_name, "company": ident.company_id}]}


@endpoint("users.get_vaults")
def vaults(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    # Configuration vaults are an enterprise feature: an empty list is the truthful answer.
    return {"vaults": [], "total": 0}
