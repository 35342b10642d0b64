"""The LFW View 2 protocol (facelab.studies.evaluation): fold thresholds chosen on the other folds,
checked by hand on small inputs and end to end on a tiny pairs file the test writes."""

from __future__ import annotations

import numpy as np
import pytest

from facelab.studies.evaluation import best_accuracy_threshold, kfold_accuracy, lfw_view2


def test_best_accuracy_threshold_takes_the_middle_of_a_plateau():
    scores = np.array([0.1, 0.2, 0.6, 0.7, 0.9])
    same = np.array([False, False, True, True, True])
    t, acc = best_accuracy_threshold(scores, same)
    # every t in (0.2, 0.6] separates perfectly; of the observed candidates only 0.6 does
    assert (t, acc) == (0.6, 1.0)
    scores = np.array([0.1, 0.5, 0.3, 0.8])
    same = np.array([False, False, True, True])
    t, acc = best_accuracy_threshold(scores, same)
    # 0.3 and 0.8 both give 3/4 (0.5 gives 2/4): of the tied best the upper middle one
    assert acc == 0.75 and t == 0.8
    with pytest.raises(ValueError, match="both same-person and different-person"):
        best_accuracy_threshold(scores[:2], same[:2])


def test_kfold_threshold_comes_from_the_other_folds_only():
    # fold 0 alone would be separated at 0.55; folds 1 and 2 put the threshold at 0.7,
    # which misclassifies fold 0's genuine pair scoring 0.6
    scores = np.array([0.6, 0.3, 0.9, 0.5, 0.8, 0.65])
    same = np.array([True, False, True, False, True, False])
    folds = np.array([0, 0, 1, 1, 2, 2])
    res = kfold_accuracy(scores, same, folds)
    f = res.folds.set_index("fold")
    assert f.loc[0, "threshold"] == best_accuracy_threshold(scores[2:], same[2:])[0]
    assert f.loc[0, "threshold"] > 0.6 and f.loc[0, "accuracy"] == 0.5
    for k in (1, 2):
        other = folds != k
        t = best_accuracy_threshold(scores[other], same[other])[0]
        assert f.loc[k, "threshold"] == t
        test = folds == k
        assert f.loc[k, "correct"] == int(((scores[test] >= t) == same[test]).sum())
    acc = f["accuracy"].to_numpy()
    assert res.mean == pytest.approx(acc.mean())
    assert res.std == pytest.approx(acc.std(ddof=1))
    assert res.sem == pytest.approx(acc.std(ddof=1) / np.sqrt(3))
    # a failed pair is wrong in its fold and takes no part in choosing thresholds
    failed = np.array([False, False, False, False, False, True])
    res2 = kfold_accuracy(np.where(failed, np.nan, scores), same, folds, failed=failed)
    f2 = res2.folds.set_index("fold")
    assert f2.loc[2, "n_failed_pairs"] == 1 and f2.loc[2, "n"] == 2
    assert f2.loc[2, "correct"] <= 1
    with pytest.raises(ValueError, match="at least 2 folds"):
        kfold_accuracy(scores, same, np.zeros(6, int))


def test_lfw_view2_on_a_tiny_pairs_file(tmp_path, data_root, tmp_cache):
    from facelab.data.datasets import load_dataset

    df = load_dataset("lfw", data_root, labels=False)
    nums = df.groupby("subject")["image_number"].apply(sorted)
    multi = sorted(nums[nums.str.len() >= 2].index)[:6]
    single = sorted(nums[nums.str.len() == 1].index)[:6]

    def one(p):
        return nums[p][0]

    lines = ["3\t2"]
    for k in range(3):  # 3 folds of 2 same-person and 2 different-person pairs
        a, b = multi[2 * k], multi[2 * k + 1]
        c, d = single[2 * k], single[2 * k + 1]
        lines += [f"{a}\t{nums[a][0]}\t{nums[a][1]}", f"{b}\t{nums[b][0]}\t{nums[b][1]}",
                  f"{c}\t{one(c)}\t{d}\t{one(d)}", f"{a}\t{one(a)}\t{b}\t{one(b)}"]
    path = tmp_path / "pairs_tiny.txt"
    path.write_text("\n".join(lines) + "\n")
    res = lfw_view2("sface", root=data_root, pairs_file=str(path), n_boot=50,
                    target_fmr=0.2, progress=False)
    assert res.n_pairs == 12 and res.n_images == 6 * 2 + 6 and res.n_malformed_pairs == 0
    p = res.pairs
    assert p["fold"].tolist() == [k for k in range(3) for _ in range(4)]
    assert p["same"].tolist() == [True, True, False, False] * 3
    f = res.accuracy.folds.set_index("fold")
    for k in range(3):
        other = (p["fold"] != k).to_numpy()
        t = best_accuracy_threshold(p["score"].to_numpy()[other], p["same"].to_numpy()[other])[0]
        assert f.loc[k, "threshold"] == t
        test = p[p["fold"] == k]
        assert f.loc[k, "correct"] == int(((test["score"] >= t) == test["same"]).sum())
    assert res.accuracy.mean == pytest.approx(f["accuracy"].mean())
    assert 0 <= res.auc_ci[0] <= res.auc <= 1 and res.auc_ci[1] <= 1
    assert res.n_failed_images == 0  # every LFW crop has a face for YuNet
    s = res.summary()
    assert s["published"][0]["accuracy"] == 0.994 and len(s["fold_accuracy"]) == 3
    with pytest.raises(ValueError, match="failures must be one of"):
        lfw_view2("sface", root=data_root, pairs_file=str(path), failures="ignore")
    # the command gives the same numbers (features now come from the cache)
    import json

    from typer.testing import CliRunner

    from facelab.cli import app

    out = CliRunner().invoke(app, ["eval", "lfw", "--model", "sface", "--root", str(data_root),
                                   "--pairs", str(path), "--n-boot", "50", "--target-fmr",
                                   "0.2", "--json"])
    assert out.exit_code == 0, out.output
    got = json.loads(out.output[out.output.index("{"):])
    assert got["accuracy_mean"] == pytest.approx(res.accuracy.mean)
    assert got["fold_threshold"] == pytest.approx(res.accuracy.folds["threshold"].tolist())
