"""API keys with scopes: random bearer tokens, stored only as their SHA-256.

A token reads `inbox_<id>_<secret>`: `id` is 16 hex digits (the lookup key,
not secret) and `secret` 256 bits from the OS's CSPRNG (`secrets`). The store,
`<data_dir>/secrets/api_keys.json` (0600, replaced atomically under a file
lock), keeps per key its id, name, scopes, creation and revocation times and
the SHA-256 of the whole token, never the token. A fast unsalted hash is
enough for secrets of this entropy (a slow password hash is for memorized
secrets, NIST SP 800-63B section 5.1.1.2); comparison is constant-time
(`hmac.compare_digest`).

Scopes: `send` (decide, score, send_time, rank_content, choose_variant),
`reward` (reward), `admin` (reload and every other non-public endpoint).
Clients read the token from `INBOX_API_KEY` (`client_headers`).
`local_api_key(settings)` gives notebooks and the demo a usable key for a
local data directory without storing a token: it is derived from the
installation secret (`inbox.secrets`), and only its hash is registered.
"""
from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

SCOPES = ("send", "reward", "admin")
ENV_VAR = "INBOX_API_KEY"
TOKEN_RE = re.compile(r"inbox_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")
LOCAL_KEY_NAME = "local (derived from the installation secret)"


class ApiKeyError(ValueError):
    """A key-management input error; `field` names the offending argument."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    scopes: tuple[str, ...]
    created_at: str
    sha256: str
    revoked_at: str | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def store_path(data_dir) -> Path:
    return Path(data_dir) / "secrets" / "api_keys.json"


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def parse_scopes(values) -> tuple[str, ...]:
    """`--scope send,reward --scope admin` -> ('send', 'reward', 'admin'); unknown scopes refused."""
    scopes = [s.strip() for v in values for s in str(v).split(",") if s.strip()]
    if not scopes:
        raise ApiKeyError("scope", f"at least one of {', '.join(SCOPES)}")
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        raise ApiKeyError("scope", f"unknown scope {unknown[0]!r}; expected {', '.join(SCOPES)}")
    return tuple(s for s in SCOPES if s in scopes)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class KeyStore:
    """The key file of one data directory: create, list, revoke (each a locked read-modify-write)."""

    def __init__(self, data_dir):
        self.path = store_path(data_dir)

    def read(self) -> list[ApiKey]:
        try:
            raw = json.loads(self.path.read_text())
        except FileNotFoundError:
            return []
        return [ApiKey(**{**k, "scopes": tuple(k["scopes"])}) for k in raw["keys"]]

    @contextlib.contextmanager
    def _locked(self):
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(self.path.with_name(".api_keys.lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def _write(self, keys: list[ApiKey]) -> None:
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump({"version": 1, "keys": [asdict(k) for k in keys]}, fh, indent=1)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)

    def create(self, scopes, name: str = "") -> tuple[ApiKey, str]:
        """A new key with these scopes; returns it and its token (shown once, never stored)."""
        return self._add(parse_scopes(scopes), name, secrets.token_hex(8), secrets.token_urlsafe(32))

    def _add(self, scopes: tuple[str, ...], name: str, key_id: str, secret: str) -> tuple[ApiKey, str]:
        if len(name) > 200:
            raise ApiKeyError("name", "at most 200 characters")
        token = f"inbox_{key_id}_{secret}"
        key = ApiKey(id=key_id, name=name, scopes=scopes, created_at=_now(), sha256=token_digest(token))
        with self._locked():
            keys = self.read()
            if any(k.id == key_id for k in keys):
                raise ApiKeyError("id", f"a key {key_id} exists already")
            self._write([*keys, key])
        return key, token

    def revoke(self, key_id: str) -> ApiKey:
        with self._locked():
            keys = self.read()
            match = [k for k in keys if k.id == key_id]
            if not match:
                raise ApiKeyError("id", f"no key {key_id!r}")
            revoked = ApiKey(**{**asdict(match[0]), "revoked_at": match[0].revoked_at or _now()})
            self._write([revoked if k.id == key_id else k for k in keys])
        return revoked


class KeyTable:
    """The active keys of a store, cached in the process and re-read when the file changes (one `stat` a call)."""

    def __init__(self, data_dir):
        self.store = KeyStore(data_dir)
        self.path = self.store.path
        self._stamp: tuple | None = None
        self._keys: dict[str, ApiKey] = {}

    def _refresh(self) -> None:
        try:
            st = os.stat(self.path)
            stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = None
        if stamp != self._stamp:
            self._keys = {k.id: k for k in self.store.read() if k.active}
            self._stamp = stamp

    def lookup(self, token: str) -> ApiKey | None:
        """The active key this token belongs to, else None (malformed, unknown, revoked or wrong secret)."""
        self._refresh()
        m = TOKEN_RE.fullmatch(token)
        key = self._keys.get(m.group(1)) if m else None
        if key is None:
            return None
        return key if hmac.compare_digest(token_digest(token), key.sha256) else None


def local_api_key(settings=None, scopes=SCOPES) -> str:
    """A token with `scopes` for the local data directory: derived from the installation secret, so the
    same call (a notebook, `inbox demo`) gets the same key back; its hash is registered on first use.
    A revoked local key is replaced by the next derivation."""
    from inbox.secrets import keyed_digest
    from inbox.settings import load_settings

    settings = settings or load_settings()
    scopes = parse_scopes(scopes)
    store = KeyStore(settings.data_dir)
    for n in range(1000):
        message = f"{','.join(scopes)}:{n}".encode()
        key_id = keyed_digest(settings, "api-key-local-id", message)[:16]
        digest = bytes.fromhex(keyed_digest(settings, "api-key-local-secret", message))
        secret = base64.urlsafe_b64encode(digest).decode().rstrip("=")
        token = f"inbox_{key_id}_{secret}"
        known = {k.id: k for k in store.read()}
        if key_id not in known:
            with contextlib.suppress(ApiKeyError):  # another process registered it meanwhile
                store._add(scopes, LOCAL_KEY_NAME, key_id, secret)
            return token
        if known[key_id].active and hmac.compare_digest(known[key_id].sha256, token_digest(token)):
            return token
    raise ApiKeyError("id", "no local key left to derive; create one with `inbox keys create`")


def client_headers(token: str | None = None) -> dict[str, str]:
    """`Authorization: Bearer <token>` for a client of the service (token default: env `INBOX_API_KEY`)."""
    token = token or os.environ.get(ENV_VAR, "").strip()
    return {"Authorization": f"Bearer {token}"} if token else {}
