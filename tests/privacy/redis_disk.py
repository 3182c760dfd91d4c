"""A redis-server with persistence on (RDB and AOF) for the erasure tests, and a byte scan of its files."""
from __future__ import annotations

import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

CANARY = "canary-erasure-zq81kx.example"  # a value that cannot occur in the files by chance


@contextmanager
def persistent_redis(directory: Path, *options: str):
    """redis-server on a free loopback port writing dump.rdb and appendonlydir/ into `directory`;
    uncompressed RDB strings, so a value's bytes are findable in the files."""
    import redis

    from inbox.services import binary, free_port

    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    proc = subprocess.Popen([binary("redis-server"), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory),
                             "--appendonly", "yes", "--save", "3600 1", "--rdbcompression", "no", *options],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)
        yield client, f"redis://127.0.0.1:{port}/0"
    finally:
        client.close()
        proc.terminate()
        proc.wait(30)


def files_holding(directory: Path, needle: bytes) -> list[str]:
    """The persistence files under `directory` that contain `needle` (Redis removes replaced AOF files
    right after a rewrite: a file that vanished while being read does not count)."""
    found = []
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        try:
            if needle in path.read_bytes():
                found.append(path.relative_to(directory).as_posix())
        except FileNotFoundError:
            pass
    return found
