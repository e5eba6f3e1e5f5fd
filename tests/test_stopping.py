"""The stop verdict: one vocabulary ("go on" / "stop"), decided by the share of each class's errors left."""

from coreclean.sessions.stopping import STOP_SHARE, stop_verdict


def _verdict(left, found, *, n_reviewed=60, n_found=3, base_rate=0.05):
    return stop_verdict(n_reviewed=n_reviewed, n_errors_found=n_found, errors_left=left, errors_found=found,
                        samples_left=800, base_rate=base_rate)


def test_stop_only_when_every_class_is_done():
    done = _verdict({"dog": 1.1, "cat": 1.9}, {"dog": 26, "cat": 19})
    assert done.plateau and done.summary.startswith("stop")
    one_left = _verdict({"dog": 1.1, "cat": 8.5}, {"dog": 26, "cat": 14})
    assert not one_left.plateau and one_left.summary.startswith("go on: cat still holds errors")
    assert one_left.evidence["done_classes"] == ["dog"]


def test_the_share_threshold_and_the_less_than_one_rule():
    found = 20
    at = STOP_SHARE * found / (1 - STOP_SHARE)  # exactly STOP_SHARE of the class's errors left
    assert _verdict({"a": at * 0.99}, {"a": found}).plateau
    assert not _verdict({"a": at * 1.2}, {"a": found}).plateau
    assert _verdict({"a": 0.6}, {"a": 0}).plateau  # nothing found, under one error estimated: done


def test_a_round_still_finding_many_errors_never_says_stop():
    busy = _verdict({"a": 0.5}, {"a": 40}, n_reviewed=50, n_found=40)
    assert not busy.plateau and "one more round confirms" in busy.summary


def test_the_summary_never_contradicts_itself():
    for left, found, n_found in (({"a": 30.0}, {"a": 10}, 30), ({"a": 0.2}, {"a": 30}, 0), ({"a": 9.0}, {"a": 3}, 2)):
        verdict = _verdict(left, found, n_found=n_found)
        assert verdict.summary.startswith("stop") == verdict.plateau
        assert verdict.summary.startswith("go on") != verdict.plateau
