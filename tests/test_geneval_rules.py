"""GenEval judging rules on hand-made detections: every task, every relation, every threshold."""

import pytest

from recakit.bench.geneval import (
    COUNTING_SCORE_THRESHOLD,
    SCORE_THRESHOLD,
    TASKS,
    judge,
    kept_detections,
    relative_position,
    summarize,
)


def det(name, box, score=0.95, color=None):
    return {"class": name, "score": score, "box": list(box), "color": color}


def single(name):
    return {"tag": "single_object", "prompt": f"a photo of a {name}", "include": [{"class": name, "count": 1}]}


def position(name, relation, target):
    return {
        "tag": "position",
        "prompt": f"a photo of a {name} {relation} a {target}",
        "include": [{"class": target, "count": 1}, {"class": name, "count": 1, "position": [relation, 0]}],
    }


def counting(name, count):
    return {
        "tag": "counting",
        "prompt": f"a photo of {count} {name}s",
        "include": [{"class": name, "count": count}],
        "exclude": [{"class": name, "count": count + 1}],
    }


# -- presence and thresholds -----------------------------------------------------------------------
def test_single_object_present_and_absent():
    assert judge(single("cup"), [det("cup", (10, 10, 30, 30))]) == (True, "all requirements met")
    correct, reason = judge(single("cup"), [det("clock", (10, 10, 30, 30))])
    assert not correct and "expected 1 cup, found 0" in reason


def test_score_threshold_is_strictly_above_0_3():
    assert SCORE_THRESHOLD == 0.3
    assert judge(single("cup"), [det("cup", (0, 0, 9, 9), score=0.31)])[0]
    assert not judge(single("cup"), [det("cup", (0, 0, 9, 9), score=0.29)])[0]
    assert not judge(single("cup"), [det("cup", (0, 0, 9, 9), score=0.3)])[0]


def test_counting_uses_the_0_9_threshold():
    assert COUNTING_SCORE_THRESHOLD == 0.9
    two = [det("cup", (0, 0, 9, 9), score=0.99)]
    assert judge(counting("cup", 2), two + [det("cup", (20, 0, 29, 9), score=0.91)])[0]
    correct, reason = judge(counting("cup", 2), two + [det("cup", (20, 0, 29, 9), score=0.89)])
    assert not correct and "found 1" in reason
    # the same 0.89 detection counts for any other task
    two_object = {"tag": "two_object", "prompt": "", "include": [{"class": "cup", "count": 2}]}
    assert judge(two_object, two + [det("cup", (20, 0, 29, 9), score=0.89)])[0]


def test_counting_fails_with_one_too_many_via_exclude():
    cups = [det("cup", (20 * i, 0, 20 * i + 9, 9), score=0.95) for i in range(4)]
    assert judge(counting("cup", 3), cups[:3])[0]
    correct, reason = judge(counting("cup", 3), cups)
    assert not correct and reason == "expected fewer than 4 cup, found 4"
    # an extra below the counting threshold is not seen
    assert judge(counting("cup", 3), cups[:3] + [det("cup", (90, 0, 99, 9), score=0.85)])[0]


def test_at_most_16_per_class_are_kept():
    many = [det("cup", (i, 0, i + 5, 5), score=0.5 + i / 100) for i in range(20)]
    kept = kept_detections(single("cup"), many)["cup"]
    assert len(kept) == 16
    assert [d["score"] for d in kept] == sorted((d["score"] for d in many), reverse=True)[:16]
    # the cap hides the 17th object from an exclude clause
    entry = {
        "tag": "counting",
        "prompt": "",
        "include": [{"class": "cup", "count": 1}],
        "exclude": [{"class": "cup", "count": 17}],
    }
    assert judge(entry, [dict(d, score=0.95) for d in many])[0]


def test_two_object_needs_both():
    entry = {
        "tag": "two_object",
        "prompt": "a photo of a cup and a clock",
        "include": [{"class": "cup", "count": 1}, {"class": "clock", "count": 1}],
    }
    assert judge(entry, [det("cup", (0, 0, 9, 9)), det("clock", (30, 0, 39, 9))])[0]
    correct, reason = judge(entry, [det("cup", (0, 0, 9, 9))])
    assert not correct and reason == "expected 1 clock, found 0"


# -- colour ------------------------------------------------------------------------------------------
def colors_entry(color, count=1):
    return {
        "tag": "colors",
        "prompt": f"a photo of a {color} cup",
        "include": [{"class": "cup", "count": count, "color": color}],
    }


def test_colors_task():
    assert judge(colors_entry("red"), [det("cup", (0, 0, 9, 9), color="red")])[0]
    correct, reason = judge(colors_entry("red"), [det("cup", (0, 0, 9, 9), color="blue")])
    assert not correct and reason == "expected 1 red cup, found 1 blue"


def test_colour_is_read_from_the_most_confident_objects_only():
    detections = [det("cup", (0, 0, 9, 9), score=0.9, color="blue"), det("cup", (20, 0, 29, 9), score=0.8, color="red")]
    assert not judge(colors_entry("red"), detections)[0]
    assert judge(colors_entry("blue"), detections)[0]


def test_colour_counting_fails_when_fewer_than_count_have_it():
    entry = colors_entry("red", count=2)
    assert judge(entry, [det("cup", (0, 0, 9, 9), color="red"), det("cup", (20, 0, 29, 9), color="red")])[0]
    correct, reason = judge(entry, [det("cup", (0, 0, 9, 9), color="red"), det("cup", (20, 0, 29, 9), color="green")])
    assert not correct and "found 1 red, 1 green" in reason


def test_colour_prompt_with_a_detector_without_colours_is_an_error():
    with pytest.raises(ValueError, match="no colour"):
        judge(colors_entry("red"), [det("cup", (0, 0, 9, 9), color=None)])


def test_color_attr_task():
    entry = {
        "tag": "color_attr",
        "prompt": "a photo of a red cup and a blue clock",
        "include": [{"class": "cup", "count": 1, "color": "red"}, {"class": "clock", "count": 1, "color": "blue"}],
    }
    assert judge(entry, [det("cup", (0, 0, 9, 9), color="red"), det("clock", (30, 0, 39, 9), color="blue")])[0]
    correct, reason = judge(entry, [det("cup", (0, 0, 9, 9), color="blue"), det("clock", (30, 0, 39, 9), color="red")])
    assert not correct and "red cup" in reason and "blue clock" in reason


# -- position ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "relation, box",
    [
        ("left of", (0, 40, 20, 60)),
        ("right of", (80, 40, 100, 60)),
        ("above", (40, 0, 60, 20)),
        ("below", (40, 80, 60, 100)),
    ],
)
def test_each_relation(relation, box):
    target = det("clock", (40, 40, 60, 60))
    assert relative_position(box, target["box"]) == {relation}
    assert judge(position("cup", relation, "clock"), [target, det("cup", box)])[0]
    opposite = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}[relation]
    correct, reason = judge(position("cup", opposite, "clock"), [target, det("cup", box)])
    assert not correct and reason == f"expected cup {opposite} clock, found {relation}"


def test_diagonal_offsets_give_two_relations_or_none():
    # at 45 degrees each normalised component is ~0.707 > 0.5 once the margin is small
    assert relative_position((0, 0, 2, 2), (98, 98, 100, 100)) == {"left of", "above"}
    # at ~63 degrees the horizontal component (0.447) is too small: only "above"
    assert relative_position((0, 0, 2, 2), (50, 100, 52, 102)) == {"above"}


def test_margin_of_a_tenth_of_the_summed_sizes():
    # two 20 px boxes side by side: the margin is 0.1 * (20 + 20) = 4 px, and what is left of an
    # offset d, (d - 4) / d, must exceed 0.5, so d must exceed 8 px
    target = (40, 40, 60, 60)
    assert relative_position((31, 40, 51, 60), target) == {"left of"}  # d = 9: 5/9
    assert relative_position((32, 40, 52, 60), target) == set()  # d = 8: exactly 0.5
    assert relative_position((35, 40, 55, 60), target) == set()  # d = 5: 1/5
    # bigger boxes need a bigger offset: two 60 px boxes 20 px apart are in no relation
    assert relative_position((0, 0, 60, 60), (20, 0, 80, 60)) == set()
    assert relative_position((0, 0, 60, 60), (30, 0, 90, 60)) == {"left of"}


def test_too_close_means_no_relation():
    target = det("clock", (40, 40, 60, 60))
    cup = det("cup", (38, 41, 58, 61))
    assert relative_position(cup["box"], target["box"]) == set()
    correct, reason = judge(position("cup", "left of", "clock"), [target, cup])
    assert not correct and reason == "expected cup left of clock, found no relation (too close)"


def test_every_object_against_every_target():
    entry = {
        "tag": "position",
        "prompt": "",
        "include": [{"class": "clock", "count": 2}, {"class": "cup", "count": 1, "position": ["left of", 0]}],
    }
    cup = det("cup", (0, 40, 20, 60))
    assert judge(entry, [cup, det("clock", (50, 40, 70, 60)), det("clock", (80, 40, 100, 60))])[0]
    # a second clock to the cup's left breaks the relation
    assert not judge(entry, [cup, det("clock", (50, 40, 70, 60)), det("clock", (-40, 40, -20, 60))])[0]


def test_position_without_its_target():
    correct, reason = judge(position("cup", "left of", "clock"), [det("cup", (0, 40, 20, 60))])
    assert not correct
    assert reason == "expected 1 clock, found 0; no clock to place the cup left of"


def test_position_uses_only_the_most_confident_object():
    target = det("clock", (40, 40, 60, 60))
    best = det("cup", (0, 40, 20, 60), score=0.9)
    weaker_wrong_side = det("cup", (80, 40, 100, 60), score=0.5)
    assert judge(position("cup", "left of", "clock"), [target, best, weaker_wrong_side])[0]


# -- aggregation ---------------------------------------------------------------------------------------
def test_summarize_is_the_unweighted_mean_of_tasks():
    results = [{"tag": "single_object", "correct": True}] * 4 + [
        {"tag": "counting", "correct": True},
        {"tag": "counting", "correct": False},
    ]
    summary = summarize(results)
    assert summary["tasks"]["single_object"] == 1.0
    assert summary["tasks"]["counting"] == 0.5
    assert summary["overall"] == pytest.approx(0.75)  # not 5/6: tasks weigh the same
    assert summary["n_images"] == 6
    assert summary["missing"] == ["two_object", "colors", "position", "color_attr"]
    assert summary["tasks"]["position"] is None


def test_summarize_all_six_tasks_and_bad_tags():
    results = [{"tag": task, "correct": index % 2 == 0} for index, task in enumerate(TASKS)]
    summary = summarize(results)
    assert summary["overall"] == pytest.approx(0.5) and summary["missing"] == []
    assert summarize([])["overall"] is None
    with pytest.raises(ValueError, match="unknown GenEval task"):
        summarize([{"tag": "spelling", "correct": True}])
