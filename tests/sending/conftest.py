"""The serving tests' world and service (tests/serving/conftest.py), reused for the send pipeline's
end-to-end tests: loaded from that file so both directories share one definition (in a whole-suite run
each directory builds its own copy, so the sending tests' unsubscribes do not reach the serving tests)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_SERVING = Path(__file__).resolve().parent.parent / "serving"
if str(_SERVING) not in sys.path:
    sys.path.insert(0, str(_SERVING))  # its conftest imports serving_provider_samples
_spec = importlib.util.spec_from_file_location("serving_fixtures_for_sending", _SERVING / "conftest.py")
_fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_fixtures)

serving_world = _fixtures.serving_world
service = _fixtures.service
api_key = _fixtures.api_key
client = _fixtures.client
