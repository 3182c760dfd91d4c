"""Property-based requests against the live OpenAPI of the real service (schemathesis): every
operation gets schema-valid and schema-violating bodies, with a key of every scope; for /decide and
/choose_variant half the cases name the registered campaign and known contacts, so they run past
validation into the allocator. No answer may be a 5xx, and every answer must match the schema the
service publishes (status, content type, body)."""
from __future__ import annotations

import time
from collections import Counter

import pytest

from serving_provider_samples import CAMPAIGN

pytestmark = [pytest.mark.server, pytest.mark.slow]

EXAMPLES = 25          # per operation and generation mode
BUDGET_S = 50.0        # the whole run stops generating after this


def _known_contacts(settings, n):
    from simulation.eventlog import read_table, table_path

    return read_table("contacts", table_path(settings.events_dir, "contacts"))["contact_id"].head(n).tolist()


def test_live_openapi_no_5xx_and_no_schema_violation(service, api_key, serving_world):
    import httpx
    from hypothesis import HealthCheck, Phase, given, settings, strategies as st
    from hypothesis.errors import Unsatisfiable

    import schemathesis
    from schemathesis import GenerationMode
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance, response_schema_conformance, status_code_conformance,
    )

    spec = httpx.get(f"{service.url}/docs.json", timeout=30).json()
    schema = schemathesis.openapi.from_dict(spec)
    headers = {"Authorization": f"Bearer {api_key}"}
    contacts = _known_contacts(serving_world, 50)
    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    statuses: Counter = Counter()
    failures: list[str] = []
    decided: Counter = Counter()
    seconds: Counter = Counter()
    deadline = time.monotonic() + BUDGET_S

    operations = sorted((r.ok() for r in schema.get_all_operations()), key=lambda op: op.path == "/reload")
    assert {op.path for op in operations} >= {"/decide", "/choose_variant", "/reward", "/score", "/send_time",
                                              "/rank_content", "/reload"}
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            strategy = operation.as_strategy(generation_mode=mode)

            @settings(max_examples=2 if operation.path == "/reload" else EXAMPLES, deadline=None, database=None, derandomize=True,
                      phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
            @given(case=strategy, aim=st.booleans())
            def run(case, aim):
                if time.monotonic() > deadline:
                    return
                if aim and mode is GenerationMode.POSITIVE and isinstance(case.body, dict):
                    if operation.path in ("/decide", "/choose_variant"):
                        case.body["campaign_id"] = CAMPAIGN
                    if operation.path == "/decide":
                        case.body["contact_ids"] = contacts[: max(1, len(case.body.get("contact_ids", [])))]
                        case.body.pop("content_ids", None)
                    if operation.path == "/choose_variant":
                        case.body["contact_id"] = contacts[0]
                        case.body.pop("exclude", None)
                started = time.perf_counter()
                response = case.call(base_url=service.url, headers=headers, timeout=60)
                seconds[operation.path] += time.perf_counter() - started
                statuses[(operation.path, response.status_code)] += 1
                if operation.path == "/decide" and response.status_code == 200 and aim:
                    decided["calls"] += 1
                    decided["decisions"] += len(response.json().get("decisions", []))
                try:
                    case.validate_response(response, checks=checks, headers=headers)
                except (Exception, BaseExceptionGroup) as exc:  # recorded, not raised: one report at the end
                    failures.append(f"{operation.path} {mode.value} {response.status_code}: "
                                    f"{type(exc).__name__}: {str(exc)[:400]}")

            try:
                run()
            except Unsatisfiable:  # e.g. no schema-violating variant of an operation without inputs
                pass

    total = sum(statuses.values())
    server_errors = {k: n for k, n in statuses.items() if k[1] >= 500}
    print(f"schemathesis: {total} requests, {len(failures)} check failures, {sum(server_errors.values())} 5xx, "
          f"decide past validation: {decided['calls']} calls, {decided['decisions']} decisions")
    print(sorted(statuses.items()))
    print({path: round(s, 2) for path, s in seconds.items()}, f"{time.monotonic() - deadline + BUDGET_S:.1f} s")
    assert total >= 100, statuses
    assert not server_errors, server_errors
    assert not failures, "\n".join(failures[:10])
    assert decided["calls"] > 0, statuses  # /decide ran past validation with the registered campaign
