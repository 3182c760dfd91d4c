"""Real Redis and PostgreSQL servers for the scale-profile tests, started once per session on free
loopback ports from the Debian packages (`inbox.services`) and stopped at the end."""
import uuid

import pytest


@pytest.fixture(scope="session")
def services_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("scale-services")


@pytest.fixture(scope="session")
def postgres():
    from inbox.services import postgres_server

    with postgres_server() as pg:
        yield pg


@pytest.fixture(scope="session")
def redis_url(services_dir):
    from inbox.services import redis_server

    with redis_server(services_dir) as url:
        yield url


@pytest.fixture
def pg_url(postgres):
    """A fresh database for one test."""
    return postgres.create_database(f"t_{uuid.uuid4().hex[:12]}")


@pytest.fixture(scope="session")
def spark():
    """One local[2] Spark session for the scale tests (Java 17; stopped at the end)."""
    from models.spark_scoring import spark_session

    session = spark_session("local[2]")
    yield session
    session.stop()
