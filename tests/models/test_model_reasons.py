import numpy as np
import pandas as pd

from models.reasons import phrase, top_reasons


def test_top_reasons_follow_contribution_signs_and_order():
    features = pd.DataFrame({
        "opens_30d": [5, 0], "seniority": ["executive", "ic"], "days_since_last_click": [3.0, np.nan],
        "unsubscribed": [False, True], "click_rate_90d": [0.12, 0.01],
    })
    contrib = np.array([
        [0.9, 0.5, -0.2, 0.0, 0.1, -3.0],   # last column = bias, ignored
        [-0.4, -0.1, -0.3, -2.0, 0.2, -3.0],
    ])
    pos, neg = top_reasons(contrib, features, k=3)
    assert pos[0] == ["5 opens in the last 30 days", "seniority is executive", "click rate 0.12 over the last 90 days"]
    assert neg[0] == ["3 days since the last click"]  # zero contributions are not reasons
    assert pos[1] == ["click rate 0.01 over the last 90 days"]
    assert neg[1][0] == "unsubscribed: yes"
    assert "no click yet" in neg[1]


def test_phrases_are_words_not_column_names():
    s = phrase("contact_engagement__sends_7d", pd.Series([2]))
    assert s.iloc[0] == "2 sends in the last 7 days"
    assert phrase("tenure_days", pd.Series([400.0])).iloc[0] == "on the list for 400 days"


def test_a_flag_in_its_ordinary_state_is_never_a_reason():
    features = pd.DataFrame({"bounced": [False, True, False], "consent": [True, True, False],
                             "opens_30d": [4, 0, 1]})
    contrib = np.array([
        [0.9, 0.4, 0.1, 0.0],   # "bounced: no" and "consent: yes" push up but describe most contacts
        [-2.0, 0.4, -0.2, 0.0],
        [0.9, -0.5, -0.1, 0.0],
    ]).copy()
    before = contrib.copy()
    pos, neg = top_reasons(contrib, features, k=2)
    assert pos[0] == ["4 opens in the last 30 days"]
    assert neg[1][0] == "bounced: yes"
    assert pos[1] == []  # consent: yes is ordinary
    assert neg[2][0] == "consent: no" and pos[2] == []
    assert np.array_equal(contrib, before)  # the caller's array is not modified
