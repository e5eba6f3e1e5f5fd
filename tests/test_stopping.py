"""The stop verdict: one vocabulary ("go on" / "stop"), decided by the share of each class's errors left."""

from coreclean.sessions.stopping import STOP_SHARE, stop_verdict


def _verdict(left, found, *, n_reviewed=60, n_found=3, base_rate=0.05):
    return stop_verdict(n_reviewed=n_reviewed, n_errors_found=n_found, errors_left=left, errors_found=found,
                        samples_left=800, base_rate=base_rate)


def test_stop_only_when_every_class_is_done():
    done = _verdict({"dog": 1.1, "cat": 1.5}, {"dog": 26, "cat": 19})
    assert done.plateau and done.summary.startswith("stop")
    one_left = _verdict({"dog": 1.1, "cat": 8.5}, {"dog": 26, "cat": 14})
    assert not one_left.plateau and one_left.summary.startswith("go on: cat still holds errors")
    assert one_left.evidence["done_classes"] == ["dog"]


def test_the_share_threshold_with_its_margin_and_the_less_than_one_rule():
    import math

    from scipy.optimize import brentq

    found = 20
    # done when left + sqrt(left) <= STOP_SHARE * (left + found): the estimate raised by one Poisson sd
    at = brentq(lambda left: left + math.sqrt(left) - STOP_SHARE * (left + found), 0.0, found)
    assert _verdict({"a": at * 0.99}, {"a": found}).plateau
    assert not _verdict({"a": at * 1.05}, {"a": found}).plateau
    assert _verdict({"a": 0.3}, {"a": 0}).plateau  # nothing found, under one error even with the margin: done
    assert not _verdict({"a": 0.6}, {"a": 0}).plateau  # 0.6 is as likely 1.4


def test_a_point_estimate_under_the_share_is_not_enough():
    """#10: seed 1 of the journey folders stopped with 5 of cat's 20 errors left, its estimate 2.0 (2 / 17 = 12%)."""
    verdict = _verdict({"cat": 2.0}, {"cat": 15})
    assert 2.0 / 17 <= STOP_SHARE  # what the point estimate alone said: done
    assert not verdict.plateau and verdict.summary.startswith("go on: cat still holds errors")


def test_a_round_still_finding_many_errors_never_says_stop():
    busy = _verdict({"a": 0.5}, {"a": 40}, n_reviewed=50, n_found=40)
    assert not busy.plateau and "one more round confirms" in busy.summary


def test_the_summary_never_contradicts_itself():
    for left, found, n_found in (({"a": 30.0}, {"a": 10}, 30), ({"a": 0.2}, {"a": 30}, 0), ({"a": 9.0}, {"a": 3}, 2)):
        verdict = _verdict(left, found, n_found=n_found)
        assert verdict.summary.startswith("stop") == verdict.plateau
        assert verdict.summary.startswith("go on") != verdict.plateau


def test_one_error_left_reads_as_one_error():
    assert "~1 error estimated left" in _verdict({"a": 0.8}, {"a": 30}, n_found=0).summary
    assert "~0 errors estimated left" in _verdict({"a": 0.2}, {"a": 30}, n_found=0).summary
    assert "~9 errors estimated left" in _verdict({"a": 9.0}, {"a": 3}, n_found=2).summary
