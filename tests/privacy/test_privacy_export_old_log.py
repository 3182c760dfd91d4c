"""A decision log written before sent marks existed still exports (it has no marks to show)."""
import sqlite3
from types import SimpleNamespace

import numpy as np
import pandas as pd

from experiments.bandit import Allocator
from privacy.erase import Subject
from privacy.stores import _export_decisions


def test_export_reads_a_decision_log_without_the_sent_marks_table(tmp_path):
    alloc = Allocator.open(tmp_path)
    alloc.register_campaign("c", pd.DataFrame({"content_id": [1, 2], "subject_length": [30.0, 40.0]}), ["x"])
    out = alloc.choose("c", np.array([7, 8]), pd.DataFrame({"x": [0.0, 1.0]}))
    alloc.log.mark_sent(out["decision_id"].tolist(), int(pd.Timestamp.now(tz="UTC").value // 1000))  # epoch us
    alloc.close()
    settings = SimpleNamespace(bandit_dir=tmp_path)
    exported = _export_decisions(settings, Subject((7,)))
    assert {r["table"] for r in exported} == {"decisions", "sent_marks"}

    with sqlite3.connect(tmp_path / "decisions.db") as db:  # as a log from before sent marks
        db.execute("DROP TABLE sent_marks")
    exported = _export_decisions(settings, Subject((7,)))
    assert [r["table"] for r in exported] == ["decisions"] and exported[0]["contact_id"] == 7
