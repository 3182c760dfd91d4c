"""The installation's signing secret: one key for every HMAC this service makes.

Unsubscribe tokens, preference-centre links and hashed suppression entries are
keyed with it, so nobody without the key can forge a token or test whether an
address is suppressed. `INBOX_SECRET_KEY` (hex, at least 32 bytes) overrides;
otherwise a random key is made once under the data directory, readable only by
its owner, and written atomically so concurrent first uses agree on one key.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

KEY_BYTES = 32


def secret_key_path(settings) -> Path:
    return settings.data_dir / "secrets" / "signing.key"


def signing_key(settings) -> bytes:
    """The installation's secret (env `INBOX_SECRET_KEY` as hex, else the key file, made on first use)."""
    env = os.environ.get("INBOX_SECRET_KEY")
    if env:
        try:
            key = bytes.fromhex(env.strip())
        except ValueError as exc:
            raise ValueError("INBOX_SECRET_KEY: must be hex") from exc
        if len(key) < KEY_BYTES:
            raise ValueError(f"INBOX_SECRET_KEY: must be at least {KEY_BYTES} bytes ({2 * KEY_BYTES} hex digits)")
        return key
    path = secret_key_path(settings)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(KEY_BYTES))
        try:
            os.link(tmp, path)  # fails if another process made the key first: theirs wins
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return bytes.fromhex(path.read_text().strip())


def keyed_digest(settings, purpose: str, message: bytes) -> str:
    """HMAC-SHA256 of `message` under the installation key, separated by `purpose`; hex."""
    key = hmac.new(signing_key(settings), purpose.encode(), hashlib.sha256).digest()
    return hmac.new(key, message, hashlib.sha256).hexdigest()
