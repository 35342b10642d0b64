"""Study helpers of the expression notebook on hand-built predictions."""

import pandas as pd
import pytest

from facelab.studies.expression import false_label_rate, pairwise_agreement


def _predictions():
    rows = []
    for i in range(40):
        group = "A" if i < 20 else "B"
        true = "neutral" if i % 2 == 0 else "happy"
        pred = "fear" if (group == "B" and i % 4 == 0) else true
        for model, p in (("m1", pred), ("m2", true)):
            rows.append({"model": model, "test_dataset": "d", "file": f"f{i}",
                         "subject": f"s{i}", "true": true, "pred": p, "status": "evaluated",
                         "race": group, "gender": "female"})
    return pd.DataFrame(rows)


def test_false_label_rate_counts_fear_given_to_others():
    res = false_label_rate(_predictions(), by=["race"], min_count=5)
    m1 = res["m1"].by_group
    assert m1.loc["A", "value"] == 0.0
    # group B: i = 20..39, fear when i % 4 == 0 -> 20, 24, 28, 32, 36 = 5 of 20
    assert m1.loc["B", "count"] == 5 and m1.loc["B", "n"] == 20
    assert m1.loc["B", "ci_low"] <= 0.25 <= m1.loc["B", "ci_high"]
    neutral = false_label_rate(_predictions(), by=["race"], true_labels=["neutral"], min_count=5)
    assert neutral["m1"].by_group.loc["B", "n"] == 10
    assert res["m2"].by_group["value"].max() == 0.0


def test_pairwise_agreement_kappa():
    res = pairwise_agreement(_predictions(), "m1", "m1")
    assert res.overall["value"] == pytest.approx(1.0)
    res2 = pairwise_agreement(_predictions(), "m1", "m2", min_count=5)
    assert 0 < res2.overall["value"] < 1
