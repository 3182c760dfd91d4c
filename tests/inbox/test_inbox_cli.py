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


def test_demo_refuses_bad_combinations_before_any_work(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("INBOX_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("INBOX_ARTIFACT_ROOT", str(tmp_path / "mlruns"))
    assert main(["demo", "--days", "60"]) == 2
    assert "--days 60: training needs at least" in capsys.readouterr().err
    assert main(["demo", "--contacts", "100", "--recipients", "500"]) == 2
    assert "--recipients 500 exceeds --contacts 100" in capsys.readouterr().err
    assert not (tmp_path / "data").exists()  # nothing simulated


def test_demo_summary_is_words_without_paths():
    from inbox.demo_summary import describe

    text = describe("simulate", {"contacts": 3000, "sends": 123456, "open_rate": 0.2213, "seconds_simulate": 2.5,
                                 "paths": {"events": "/tmp/x/events"}, "note": "/tmp/x"})
    assert text == "contacts 3,000, sends 123,456, open rate 22.1%"
    line = describe("train", [{"model": "lead_scoring", "metric": "AUC", "baseline_name": "logistic",
                               "baseline": 0.79, "ours": 0.8123, "oracle": 0.85, "version": "2", "promoted": False}])
    assert line == "lead_scoring v2: AUC 0.8123, logistic 0.79, oracle 0.85; kept as challenger"
    line = describe("train", [{"model": "lead_scoring", "metric": "AUC", "baseline_name": "logistic",
                               "baseline": 0.82, "ours": 0.8123, "oracle": 0.85, "version": "1", "promoted": True,
                               "model_choice": "baseline: logistic regression"}])
    assert line == ("lead_scoring v1: AUC 0.8123, logistic 0.82, oracle 0.85; registered the baseline logistic "
                    "regression (it won); promoted to champion")


def test_version_and_a_bad_flag_shows_the_sub_command_usage(capsys):
    import pytest as _pytest

    with _pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.startswith("inbox 0.")
    with _pytest.raises(SystemExit) as done:
        main(["bandit", "learn", "--no-such-flag"])
    err = capsys.readouterr().err
    assert done.value.code == 2
    assert err.startswith("usage: inbox bandit learn") and "inbox bandit learn: error: unrecognized arguments" in err
