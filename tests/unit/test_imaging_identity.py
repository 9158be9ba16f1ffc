"""The same-person rule on embeddings (libs/imaging/identity.py), with hand-made 2-d embeddings
where distances are easy to read: the rule itself is what intake and the render command share."""

from __future__ import annotations

from libs.imaging import odd_ones_out, same_person

A, A2, A3 = (0.0, 0.0), (0.1, 0.0), (0.0, 0.1)
B = (1.0, 1.0)  # ~1.4 from the A faces, far above the 0.6 limit


def test_same_person_uses_the_median_distance_to_the_others():
    assert same_person(A, [], 0.6)
    assert same_person(A, [A2, A3], 0.6)
    assert not same_person(B, [A, A2], 0.6)
    assert not same_person(A, [A2, B, B], 0.6)  # one look-alike does not outvote the rest


def test_the_odd_one_out_is_whoever_differs_from_most():
    assert odd_ones_out([A], 0.6) == []
    assert odd_ones_out([A, A2, A3], 0.6) == []
    assert odd_ones_out([A, A2, B], 0.6) == [2]
    assert odd_ones_out([B, A, A2], 0.6) == [0]  # even when that photo comes first
    assert odd_ones_out([A, B], 0.6) == [1]  # two people, one photo each: the second given
