import os
import stat

import pytest

from inbox.secrets import keyed_digest, secret_key_path, signing_key
from inbox.settings import Settings


def _settings(tmp_path):
    return Settings(data_dir=tmp_path / "data", tracking_uri="sqlite://", artifact_root=tmp_path / "mlruns")


def test_key_is_made_once_private_and_stable(tmp_path, monkeypatch):
    monkeypatch.delenv("INBOX_SECRET_KEY", raising=False)
    s = _settings(tmp_path)
    first = signing_key(s)
    assert len(first) == 32 and signing_key(s) == first
    mode = stat.S_IMODE(os.stat(secret_key_path(s)).st_mode)
    assert mode == 0o600
    other = _settings(tmp_path / "other")
    assert signing_key(other) != first


def test_env_key_overrides_and_is_validated(tmp_path, monkeypatch):
    s = _settings(tmp_path)
    monkeypatch.setenv("INBOX_SECRET_KEY", "ab" * 32)
    assert signing_key(s) == bytes.fromhex("ab" * 32)
    assert not secret_key_path(s).exists()
    monkeypatch.setenv("INBOX_SECRET_KEY", "ab" * 8)
    with pytest.raises(ValueError, match="INBOX_SECRET_KEY"):
        signing_key(s)


def test_digest_depends_on_purpose_and_key(tmp_path, monkeypatch):
    monkeypatch.setenv("INBOX_SECRET_KEY", "01" * 32)
    s = _settings(tmp_path)
    a = keyed_digest(s, "unsubscribe", b"42")
    assert a == keyed_digest(s, "unsubscribe", b"42")
    assert a != keyed_digest(s, "suppression", b"42")
    monkeypatch.setenv("INBOX_SECRET_KEY", "02" * 32)
    assert a != keyed_digest(s, "unsubscribe", b"42")
