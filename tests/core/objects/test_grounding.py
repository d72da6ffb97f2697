"""Text grounding without weights: labels, colour, size and position words, and the honest
"not found" / "ambiguous" answers."""

import numpy as np
import pytest
from box_scenes import Box, boxes_model, camera_looking_at, unit_feature

from cgc_core.config import ObjectsConfig
from cgc_core.objects import cluster_objects, ground_text, label_object
from cgc_core.objects.colors import colour_name_list, colour_names

RED, BLUE, GREEN, WHITE = (0.8, 0.1, 0.1), (0.1, 0.2, 0.8), (0.1, 0.6, 0.15), (0.92, 0.92, 0.9)


def table_and_ids(boxes):
    model, owner = boxes_model(boxes, spacing=0.015, std=0.008)
    table = cluster_objects(model, ObjectsConfig())
    ids = [int(np.unique(table.gaussian_object[owner == i])[0]) for i in range(len(boxes))]
    return table, ids


@pytest.fixture(scope="module")
def three_boxes():
    """A small red box on the left, a medium blue one in the middle, a large green one on the
    right (seen from -y), on a white table top."""
    return table_and_ids([
        Box((-0.3, 0.0, 0.05), (0.1, 0.1, 0.1), unit_feature(0), RED),
        Box((0.0, 0.0, 0.075), (0.15, 0.15, 0.15), unit_feature(1), BLUE),
        Box((0.3, 0.1, 0.1), (0.2, 0.2, 0.2), unit_feature(3), GREEN),
        Box((0.0, 0.05, -0.01), (1.2, 0.8, 0.02), unit_feature(2), WHITE)])


@pytest.mark.parametrize("text, index", [
    ("the red one", 0), ("BLUE", 1), ("give me the green object", 2),
    ("the largest object", 2), ("the smallest one", 0), ("the big blue one", 1)])
def test_attribute_words_find_the_object(three_boxes, text, index):
    table, ids = three_boxes
    result = ground_text(table, text, ObjectsConfig())
    assert result.found, result.message
    assert result.object.id == ids[index]


def test_position_words_are_relative_to_the_view(three_boxes):
    table, ids = three_boxes
    front = camera_looking_at((0.0, 0.0, 0.05), (0.0, -1.0, 0.6))
    back = camera_looking_at((0.0, 0.0, 0.05), (0.0, 1.0, 0.6))
    assert ground_text(table, "the leftmost", ObjectsConfig(), view=front).object.id == ids[0]
    assert ground_text(table, "the leftmost", ObjectsConfig(), view=back).object.id == ids[2]
    assert ground_text(table, "right", ObjectsConfig(), view=front).object.id == ids[2]
    with pytest.raises(ValueError, match="need a view"):
        ground_text(table, "the left one", ObjectsConfig())


def test_no_match_says_not_found_with_candidates(three_boxes):
    table, _ = three_boxes
    purple = ground_text(table, "the purple one", ObjectsConfig())
    assert purple.status == "not_found" and purple.object is None
    assert len(purple.candidates) == 3  # background left out
    unknown = ground_text(table, "the red mug", ObjectsConfig())  # 'mug': no label, no model
    assert unknown.status == "not_found" and "mug" in unknown.message
    assert ground_text(table, "the", ObjectsConfig()).status == "not_found"


def test_two_equal_matches_are_ambiguous():
    table, ids = table_and_ids([Box((-0.3, 0.0, 0.05), (0.1, 0.1, 0.1), unit_feature(0), RED),
                                Box((0.3, 0.0, 0.05), (0.1, 0.1, 0.1), unit_feature(1), RED)])
    result = ground_text(table, "red", ObjectsConfig())
    assert result.status == "ambiguous" and result.object is None
    assert {i for i, _ in result.candidates[:2]} == set(ids)


def test_labels_match_case_insensitive_tokens_and_name_background(three_boxes):
    table, ids = three_boxes
    label_object(table, ids[1], "Coffee Mug")
    label_object(table, ids[3], "table")
    try:
        assert ground_text(table, "the MUG", ObjectsConfig()).object.id == ids[1]
        assert ground_text(table, "coffee", ObjectsConfig()).object.id == ids[1]
        assert ground_text(table, "the blue mug", ObjectsConfig()).object.id == ids[1]
        assert ground_text(table, "the red mug", ObjectsConfig()).status == "not_found"
        assert ground_text(table, "the table", ObjectsConfig()).object.id == ids[3]
        labels_only = ObjectsConfig(grounding="labels")
        assert ground_text(table, "the red one", labels_only).status == "not_found"
    finally:
        table.get(ids[1]).label = table.get(ids[3]).label = ""
    with pytest.raises(ValueError, match="unknown object id"):
        label_object(table, 999, "x")


@pytest.mark.parametrize("label, query", [
    ("124", "124"), ("object_124", "object_124"), ("object 7", "Object-7"), ("the one", "the one"),
    ("red", "red"), ("it", "IT")])
def test_a_label_is_found_again_by_its_own_text(three_boxes, label, query):
    """Numbers, stop words and words another backend reads ('red' on the blue box): the whole
    label as the query names that object (issue 25: "124" was "no enabled backend knows")."""
    table, ids = three_boxes
    label_object(table, ids[1], label)
    try:
        result = ground_text(table, query, ObjectsConfig())
        assert result.found, result.message
        assert result.object.id == ids[1]
        assert ground_text(table, query, ObjectsConfig(grounding="labels")).object.id == ids[1]
    finally:
        table.get(ids[1]).label = ""


def test_one_label_on_two_objects_is_ambiguous(three_boxes):
    table, ids = three_boxes
    label_object(table, ids[0], "124")
    label_object(table, ids[2], "124")
    try:
        result = ground_text(table, "124", ObjectsConfig())
        assert result.status == "ambiguous" and {i for i, _ in result.candidates} == {ids[0],
                                                                                      ids[2]}
    finally:
        table.get(ids[0]).label = table.get(ids[2]).label = ""


def test_colour_names_hold_under_shading():
    names = colour_name_list()
    rgb = np.array([[0.8, 0.1, 0.1], [0.45, 0.06, 0.06], [0.95, 0.8, 0.1], [0.1, 0.2, 0.8],
                    [0.05, 0.1, 0.35], [0.5, 0.5, 0.5], [0.95, 0.95, 0.95], [0.05, 0.05, 0.05]])
    assert [names[i] for i in colour_names(rgb)] == [
        "red", "red", "yellow", "blue", "blue", "grey", "white", "black"]


def test_an_unknown_backend_is_an_error(three_boxes):
    table, _ = three_boxes
    with pytest.raises(ValueError, match="unknown grounding backend"):
        ground_text(table, "red", ObjectsConfig(grounding="labels,yolo"))
