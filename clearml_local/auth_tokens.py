"""Credentials and signed tokens.

The SDK decodes the token without checking its signature (it only reads ``api_version``, ``server_version``,
``feature_set`` and ``exp``); this server signs it and checks the signature on every call.
"""

from __future__ import annotations

import base64
import hmac
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

import jwt

from clearml_local.errors import unauthorized

API_VERSION = "2.23"
# The clearml-server release whose API test suite the backend is measured against (revision 2976ce6).
# The pinned SDK branches on it once below 3.x: from 1.16.3 TriggerScheduler filters by
# `_or_: {fields: [last_update, last_change], datetime: [">ISO"]}`, which clearml_local/query.py answers.
SERVER_VERSION = "2.0.0"
TOKEN_LIFETIME_S = 30 * 24 * 3600
COMPANY_ID = "embedded"
COMPANY_NAME = "clearml-local"
USER_ID = "local-user"
USER_NAME = "Local User"


@dataclass
class Identity:
    user_id: str
    user_name: str
    company_id: str
    company_name: str
    role: str = "admin"


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str
    token_secret: str


class Authenticator:
    # Verified tokens, so that a client polling with one token pays for the signature check once.
    _CACHE_SIZE = 1024

    def __init__(self, credentials: Credentials) -> None:
        self.credentials = credentials
        self._verified: OrderedDict[str, tuple[Identity, float]] = OrderedDict()
        self._lock = threading.Lock()

    def identity(self) -> Identity:
        return Identity(USER_ID, USER_NAME, COMPANY_ID, COMPANY_NAME)

    def anonymous(self) -> Identity:
        return Identity("anonymous", "anonymous", COMPANY_ID, COMPANY_NAME, role="guest")

    def identity_from_basic(self, header: str) -> Identity:
        if not header.startswith("Basic "):
            raise unauthorized(
                "Unauthorized (missing credentials): auth.login needs HTTP Basic access:secret keys"
            )
        try:
            decoded = base64.b64decode(header[len("Basic ") :], validate=True)
        except ValueError:  # binascii.Error, and non-ASCII text in the header
            raise unauthorized("Unauthorized (malformed Basic credentials)") from None
        access_key, _, secret_key = decoded.partition(b":")
        # Compared as bytes: keys with non-ASCII characters are simply wrong keys.
        valid_access = hmac.compare_digest(access_key, self.credentials.access_key.encode())
        valid_secret = hmac.compare_digest(secret_key, self.credentials.secret_key.encode())
        if not (valid_access and valid_secret):
            raise unauthorized("Unauthorized (invalid credentials): unknown access key or wrong secret key")
        return self.identity()

    def identity_from_token(self, token: str) -> Identity:
        with self._lock:
            cached = self._verified.get(token)
        if cached is not None and cached[1] > time.time():
            return cached[0]
        identity, expires = self._verify(token)
        with self._lock:
            self._verified[token] = (identity, expires)
            while len(self._verified) > self._CACHE_SIZE:
                self._verified.popitem(last=False)
        return identity

    def _verify(self, token: str) -> tuple[Identity, float]:
        try:
            claims = jwt.decode(token, self.credentials.token_secret, algorithms=["HS256"])
        except jwt.ExpiredSignatureError as exc:
            raise unauthorized("Unauthorized (token expired): log in again") from exc
        except jwt.InvalidTokenError as exc:
            raise unauthorized(f"Unauthorized (invalid token): {str(exc)[:100]}") from exc
        identity = claims.get("identity")
        if not isinstance(identity, dict):
            identity = {}
        verified = Identity(
            identity.get("user", USER_ID),
            identity.get("user_name", USER_NAME),
            identity.get("company", COMPANY_ID),
            identity.get("company_name", COMPANY_NAME),
            identity.get("role", "admin"),
        )
        return verified, float(claims.get("exp", 0))

    def issue_token(self, identity: Identity, expiration_s: int | None = None) -> str:
        now = int(time.time())
        claims = {
            "identity": {
                "user": identity.user_id,
                "user_name": identity.user_name,
                "company": identity.company_id,
                "company_name": identity.company_name,
                "role": identity.role,
            },
            "api_version": API_VERSION,
            "server_version": SERVER_VERSION,
            "feature_set": "basic",
            "env": "embedded",
            "iat": now,
            "exp": now + (expiration_s or TOKEN_LIFETIME_S),
        }
        return jwt.encode(claims, self.credentials.token_secret, algorithm="HS256")
