"""One small world, its features in Feast, three fast-trained champions, a
registered campaign, and a real `bentoml serve` on a free loopback port,
built once for the serving tests (in a tmp dir)."""
from __future__ import annotations

import pytest
from serving_provider_samples import CAMPAIGN


@pytest.fixture(scope="session")
def serving_world(tmp_path_factory):
    from features.pipeline import build_features
    from features.store import apply, get_store, materialize
    from inbox.settings import load_settings
    from models.training import train_all
    from serving.publish import publish
    from simulation.cli import simulate_to_disk
    from simulation.world import WorldConfig

    root = tmp_path_factory.mktemp("serving_world")
    (root / "mlruns").mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("INBOX_DATA_DIR", str(root / "data"))
        mp.setenv("INBOX_ARTIFACT_ROOT", str(root / "mlruns"))
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlruns' / 'mlflow.db'}")
        settings = load_settings()
        simulate_to_disk(WorldConfig(n_contacts=600, n_days=60, seed=5), settings=settings, progress=False)
        build_features(settings.events_dir, settings.features_dir)
        # trained before Feast exists (models fall back to as-of Parquet joins): with the Feast
        # training path send_time's prepare() currently fails on a row-count mismatch (reported)
        train_all(settings=settings, progress=False, fast=True)
        store = get_store(settings)
        apply(store, settings)
        materialize(store, settings)
        publish(settings, progress=False)  # the rows serving reads (`inbox publish`)
    register_campaign(settings)
    return settings


def register_campaign(settings, campaign_id: str = CAMPAIGN, n_variants: int = 3):
    from experiments.bandit import Allocator
    from sending.campaign import VARIANT_FEATURES
    from simulation.eventlog import read_table, table_path

    content = read_table("content", table_path(settings.events_dir, "content"))
    variants = content.head(n_variants)[["content_id", *VARIANT_FEATURES]]
    variants = variants.astype({c: float for c in VARIANT_FEATURES if c not in ("topic", "format")})
    alloc = Allocator.open(settings.bandit_dir)
    alloc.register_campaign(campaign_id, variants, ["engagement_score", "open_rate_30d"], reward_event="click")
    alloc.close()
    return variants["content_id"].tolist()


@pytest.fixture(scope="session")
def service(serving_world):
    from serving.runner import start_service

    with start_service(serving_world, timeout=240) as handle:
        yield handle


@pytest.fixture(scope="session")
def api_key(serving_world):
    """A key with every scope (send, reward, admin) for the serving world."""
    from serving.api_keys import KeyStore

    return KeyStore(serving_world.data_dir).create(["send", "reward", "admin"], name="tests")[1]


@pytest.fixture()
def client(service, api_key):
    """An HTTP client of the service that sends a key with every scope."""
    import httpx

    with httpx.Client(base_url=service.url, timeout=60, headers={"Authorization": f"Bearer {api_key}"}) as c:
        yield c


@pytest.fixture()
def anonymous_client(service):
    """An HTTP client of the service that sends no key."""
    import httpx

    with httpx.Client(base_url=service.url, timeout=60) as c:
        yield c


@pytest.fixture()
def allocator(serving_world):
    from experiments.bandit import Allocator

    alloc = Allocator.open(serving_world.bandit_dir)
    yield alloc
    alloc.close()
