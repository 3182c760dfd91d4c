"""API keys: the store (hashed tokens, scopes, revocation), the `inbox keys` commands, and the real
service refusing unauthenticated or out-of-scope calls (the issue 13 attacks: /reward, /decide, /reload
without a key) while the public paths stay open."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from serving_provider_samples import CAMPAIGN


def test_tokens_are_random_stored_only_hashed_and_owner_readable(tmp_path):
    from serving.api_keys import KeyStore, KeyTable, store_path

    store = KeyStore(tmp_path)
    keys = [store.create(["send"], name=f"k{i}") for i in range(20)]
    tokens = [t for _, t in keys]
    assert len(set(tokens)) == 20 and len({k.id for k, _ in keys}) == 20
    text = store_path(tmp_path).read_text()
    assert not any(t in text or t.split("_", 2)[2] in text for t in tokens)  # never the token or its secret (which may hold "_")
    assert oct(os.stat(store_path(tmp_path)).st_mode & 0o777) == "0o600"
    table = KeyTable(tmp_path)
    assert all(table.lookup(t).id == k.id for k, t in keys)
    assert table.lookup(tokens[0][:-1] + ("A" if tokens[0][-1] != "A" else "B")) is None  # one character off
    assert table.lookup("inbox_" + keys[0][0].id + "_") is None
    assert table.lookup("") is None


def test_revocation_and_new_keys_are_seen_by_a_cached_table(tmp_path):
    from serving.api_keys import KeyStore, KeyTable

    store, table = KeyStore(tmp_path), KeyTable(tmp_path)
    key, token = store.create(["reward"])
    assert table.lookup(token).scopes == ("reward",)
    store.revoke(key.id)
    assert table.lookup(token) is None
    _, other = store.create(["admin,send"])
    assert table.lookup(other).scopes == ("send", "admin")
    assert [k.revoked_at is not None for k in store.read()] == [True, False]


@pytest.mark.parametrize("scopes, field", [([], "scope"), (["root"], "scope"), (["send,everything"], "scope")])
def test_bad_scopes_are_refused_naming_the_field(tmp_path, scopes, field):
    from serving.api_keys import ApiKeyError, KeyStore

    with pytest.raises(ApiKeyError) as err:
        KeyStore(tmp_path).create(scopes)
    assert err.value.field == field


def test_local_key_is_stable_registered_once_and_replaced_after_revocation(tmp_path):
    from types import SimpleNamespace

    from serving.api_keys import KeyStore, KeyTable, local_api_key

    settings = SimpleNamespace(data_dir=tmp_path)
    token = local_api_key(settings)
    assert local_api_key(settings) == token
    table = KeyTable(tmp_path)
    assert table.lookup(token).scopes == ("send", "reward", "admin")
    assert len(KeyStore(tmp_path).read()) == 1
    KeyStore(tmp_path).revoke(table.lookup(token).id)
    fresh = local_api_key(settings)
    assert fresh != token and table.lookup(fresh) is not None and table.lookup(token) is None


def test_inbox_keys_create_list_revoke(tmp_path):
    env = {**os.environ, "INBOX_DATA_DIR": str(tmp_path)}

    def inbox(*args):
        return subprocess.run([str(Path(sys.executable).with_name("inbox")), "keys", *args], env=env, capture_output=True,
                              text=True, timeout=60)

    out = inbox("create", "--scope", "send", "--scope", "reward", "--name", "send pipeline")
    assert out.returncode == 0, out.stderr
    token = next(line for line in out.stdout.splitlines() if line.startswith("inbox_"))
    key_id = token.split("_")[1]
    listed = inbox("list")
    assert key_id in listed.stdout and "send,reward" in listed.stdout and token not in listed.stdout
    assert inbox("revoke", key_id).returncode == 0
    stored = json.loads((tmp_path / "secrets" / "api_keys.json").read_text())["keys"]
    assert stored[0]["revoked_at"]
    bad = inbox("create", "--scope", "superuser")
    assert bad.returncode == 2 and "scope" in bad.stderr


def test_openapi_rewrite_declares_bearer_and_per_operation_security():
    from serving.auth import SCHEME, secure_openapi

    spec = secure_openapi({"paths": {
        "/decide": {"post": {"responses": {"200": {}}}}, "/readyz": {"get": {"responses": {"200": {}}}},
        "/webhooks/ses": {"post": {"responses": {"200": {}}}}, "/privacy/erase": {"post": {"responses": {}}}}})
    assert spec["components"]["securitySchemes"][SCHEME] == {**spec["components"]["securitySchemes"][SCHEME],
                                                             "type": "http", "scheme": "bearer"}
    assert spec["paths"]["/decide"]["post"]["security"] == [{SCHEME: []}]
    assert {"401", "403"} <= set(spec["paths"]["/decide"]["post"]["responses"])
    assert spec["paths"]["/readyz"]["get"]["security"] == []
    assert spec["paths"]["/webhooks/ses"]["post"]["security"] == []
    assert "`admin`" in spec["paths"]["/privacy/erase"]["post"]["description"]  # unlisted: admin (fail closed)


# --- against the real service -----------------------------------------------------------------------------

def _contacts(settings, n):
    from simulation.eventlog import read_table, table_path

    return read_table("contacts", table_path(settings.events_dir, "contacts"))["contact_id"].head(n).tolist()


def _reward_count(allocator) -> int:
    return len(allocator.log.rewards())


@pytest.mark.server
@pytest.mark.slow
def test_unauthenticated_calls_do_no_harm(anonymous_client, client, serving_world, allocator):
    """The issue's attacks without a key: /reward, /decide, /reload get 401 and change nothing."""
    contacts = _contacts(serving_world, 3)
    decided = client.post("/decide", json={"campaign_id": CAMPAIGN, "contact_ids": contacts})
    assert decided.status_code == 200, decided.text
    decision_id = decided.json()["decisions"][0]["decision_id"]
    decisions, rewards = len(allocator.log.decisions(CAMPAIGN)), _reward_count(allocator)
    generation = client.post("/reload", json={}).json()["generation"]

    attacks = [("/reward", {"decision_id": decision_id, "reward": 1.0, "event_id": "forged-1"}),
               ("/decide", {"campaign_id": CAMPAIGN, "contact_ids": contacts}),
               ("/choose_variant", {"campaign_id": CAMPAIGN, "contact_id": contacts[0]}),
               ("/score", {"contact_ids": contacts}), ("/reload", {})]
    for headers in ({}, {"Authorization": "Bearer inbox_0123456789abcdef_" + "A" * 43},
                    {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer"},
                    {"Authorization": "Bearer \u00e9\u00e9".encode("utf-8")}):
        for path, body in attacks:
            r = anonymous_client.post(path, json=body, headers=headers)
            assert r.status_code == 401, (path, headers, r.status_code, r.text)
            assert r.headers["www-authenticate"].startswith("Bearer")
            assert r.json()["field"] == "authorization"
    assert len(allocator.log.decisions(CAMPAIGN)) == decisions
    assert _reward_count(allocator) == rewards
    assert client.post("/reload", json={}).json()["generation"] == generation + 1  # the anonymous ones did not count


@pytest.mark.server
@pytest.mark.slow
def test_scopes_are_enforced_and_revocation_is_immediate(anonymous_client, serving_world, allocator):
    from serving.api_keys import KeyStore

    store = KeyStore(serving_world.data_dir)
    _, send_key = store.create(["send"], name="send pipeline")
    reward_key_info, reward_key = store.create(["reward"], name="rewards")
    contacts = _contacts(serving_world, 2)

    def call(path, body, token):
        return anonymous_client.post(path, json=body, headers={"Authorization": f"Bearer {token}"})

    r = call("/decide", {"campaign_id": CAMPAIGN, "contact_ids": contacts}, send_key)
    assert r.status_code == 200, r.text
    decision_id = r.json()["decisions"][0]["decision_id"]
    reward = {"decision_id": decision_id, "reward": 1.0, "event_id": "scoped-1"}
    forbidden = call("/reward", reward, send_key)
    assert forbidden.status_code == 403 and 'error="insufficient_scope"' in forbidden.headers["www-authenticate"]
    assert call("/reload", {}, send_key).status_code == 403
    assert call("/decide", {"campaign_id": CAMPAIGN, "contact_ids": contacts}, reward_key).status_code == 403
    assert call("/some/unknown/path", {}, send_key).status_code == 403  # unlisted routes need admin
    assert call("/reward", reward, reward_key).json()["status"] == "accepted"
    store.revoke(reward_key_info.id)
    revoked = call("/reward", {**reward, "event_id": "scoped-2"}, reward_key)
    assert revoked.status_code == 401 and 'error="invalid_token"' in revoked.headers["www-authenticate"]


@pytest.mark.server
@pytest.mark.slow
def test_public_paths_need_no_key_and_openapi_declares_the_scheme(anonymous_client):
    for path in ("/readyz", "/livez", "/healthz", "/metrics", "/docs.json"):
        assert anonymous_client.get(path).status_code == 200, path
    spec = anonymous_client.get("/docs.json").json()
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    for path in ("/decide", "/score", "/send_time", "/rank_content", "/choose_variant", "/reward", "/reload"):
        assert spec["paths"][path]["post"]["security"] == [{"bearerAuth": []}], path
    # webhooks are signed by their providers, not by API keys: no 401 from the key check there
    r = anonymous_client.post("/webhooks/sendgrid", content=b"[]")
    assert not r.headers.get("www-authenticate", "").startswith('Bearer realm="inbox"')
