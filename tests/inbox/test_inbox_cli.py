"""The CLI shell: every package's commands are registered, bad input exits 2 without a traceback."""
import subprocess
import sys

from inbox.cli import build_parser, main


def test_every_command_is_registered():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name in ["simulate", "features", "train", "score", "bandit", "ab", "publish", "serve", "send", "demo"]:
        assert name in sub.choices, f"`inbox {name}` is not registered"


def test_bad_argument_exits_2_with_message(capsys):
    assert main(["demo", "--contacts", "0"]) == 2
    err = capsys.readouterr().err
    assert "--contacts must be a positive integer" in err
    assert "Traceback" not in err


def test_help_is_fast_and_clean():
    out = subprocess.run([sys.executable, "-m", "inbox.cli", "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    assert "demo" in out.stdout


def test_publish_refuses_a_bad_chunk_before_any_work(capsys):
    assert main(["publish", "--chunk", "0"]) == 2
    err = capsys.readouterr().err
    assert "--chunk" in err and "Traceback" not in err
