"""The pure merge rules (``threads.merge``), one test each (no database)."""

import pytest

from threads import merge
from threads.errors import ThreadError


def apply(state_changes=None, patch=None):
    state = {**merge.DEFAULT_STATE, **(state_changes or {})}
    new = merge.apply_patch(state, merge.parse_patch(patch or {}))
    merge.validate_state(new)
    return new


def error_of(fn, *args, **kwargs) -> ThreadError:
    with pytest.raises(ThreadError) as info:
        fn(*args, **kwargs)
    return info.value


def test_metadata_keys_named_are_set_and_others_untouched():
    new = apply({"metadata": {"a": "1", "b": "2"}}, {"metadata": {"b": "3", "c": "4"}})
    assert new["metadata"] == {"a": "1", "b": "3", "c": "4"}


def test_a_null_value_removes_the_key():
    new = apply({"metadata": {"a": "1", "b": "2"}}, {"metadata": {"a": None}})
    assert new["metadata"] == {"b": "2"}


def test_removing_an_absent_key_is_harmless():
    assert apply({"metadata": {"a": "1"}}, {"metadata": {"zz": None}})["metadata"] == {"a": "1"}


def test_metadata_null_clears_the_whole_map():
    assert apply({"metadata": {"a": "1"}}, {"metadata": None})["metadata"] == {}


def test_variables_merge_the_same_way():
    new = apply({"variables": {"x": "1", "y": "2"}}, {"variables": {"x": None, "z": "3"}})
    assert new["variables"] == {"y": "2", "z": "3"}


def test_metadata_values_may_be_lists_of_strings():
    new = apply(patch={"metadata": {"tags": ["billing", "resolved"]}})
    assert new["metadata"] == {"tags": ["billing", "resolved"]}


@pytest.mark.parametrize("value", [1, 1.5, True, {"nested": "x"}, [1], ["a", None]])
def test_metadata_values_of_other_types_are_invalid_parameters(value):
    error = error_of(merge.parse_patch, {"metadata": {"k": value}})
    assert (error.code, error.status, error.param) == ("invalid_parameters", 400, "metadata.k")


def test_variables_values_must_be_strings():
    error = error_of(merge.parse_patch, {"variables": {"k": ["a"]}})
    assert (error.code, error.param) == ("invalid_parameters", "variables.k")


def test_the_metadata_key_limit_is_checked_after_the_merge():
    full = {f"k{i}": "v" for i in range(16)}
    assert len(apply({"metadata": full}, {"metadata": {"k0": None, "new": "v"}})["metadata"]) == 16
    error = error_of(apply, {"metadata": full}, {"metadata": {"one-more": "v"}})
    assert (error.code, error.status, error.param) == ("metadata_limit_exceeded", 422, "metadata")
    assert error.message == "Metadata cannot exceed 16 key-value pairs"


def test_metadata_keys_must_be_1_to_64_characters():
    assert error_of(merge.parse_patch, {"metadata": {"": "v"}}).code == "metadata_key_invalid"
    assert error_of(merge.parse_patch, {"metadata": {"k" * 65: "v"}}).code == "metadata_key_invalid"
    assert merge.parse_patch({"metadata": {"k" * 64: "v"}})


def test_metadata_values_are_at_most_512_characters_and_lists_at_most_16():
    assert merge.parse_patch({"metadata": {"k": "x" * 512}})
    assert error_of(merge.parse_patch, {"metadata": {"k": "x" * 513}}).code == "metadata_value_too_long"
    assert error_of(merge.parse_patch, {"metadata": {"k": ["a"] * 17}}).code == "metadata_value_too_long"
    error = error_of(merge.parse_patch, {"metadata": {"k": ["a", "x" * 513]}})
    assert error.code == "metadata_value_too_long"


def test_variables_limits():
    full = {f"k{i}": "v" for i in range(64)}
    assert error_of(apply, {"variables": full}, {"variables": {"x": "v"}}).code == "variables_limit_exceeded"
    assert error_of(merge.parse_patch, {"variables": {"k": "x" * 4097}}).code == "variables_value_too_long"
    assert error_of(merge.parse_patch, {"variables": {"k" * 65: "v"}}).code == "variables_key_invalid"
    assert merge.parse_patch({"variables": {"k": "x" * 4096}})


def test_tags_are_trimmed_lower_cased_and_deduplicated_in_order():
    assert apply(patch={"tags": [" B ", "a", "b", "A"]})["tags"] == ["b", "a"]


def test_tags_replace_the_list_and_add_remove_apply_after():
    new = apply({"tags": ["old"]}, {"tags": ["x", "y"], "addTags": ["Z", "x"], "removeTags": ["y"]})
    assert new["tags"] == ["x", "z"]


def test_tag_limits():
    assert error_of(merge.parse_patch, {"tags": ["   "]}).code == "tags_invalid"
    assert error_of(merge.parse_patch, {"tags": ["t" * 65]}).code == "tags_invalid"
    error = error_of(apply, {"tags": [f"t{i}" for i in range(32)]}, {"addTags": ["one-more"]})
    assert (error.code, error.status) == ("tags_invalid", 422)


def test_tags_must_be_a_list_of_strings():
    assert error_of(merge.parse_patch, {"tags": "a"}).code == "invalid_parameters"
    assert error_of(merge.parse_patch, {"addTags": [1]}).code == "invalid_parameters"


def test_title_null_stores_empty_and_is_at_most_256():
    assert apply({"title": "x"}, {"title": None})["title"] == ""
    error = error_of(merge.parse_patch, {"title": "t" * 257})
    assert (error.code, error.status, error.param) == ("title_too_long", 422, "title")


@pytest.mark.parametrize("field", ["isArchived", "isActive", "visibleInUi", "isPinned"])
@pytest.mark.parametrize("value", [1, "true", None])
def test_flags_are_strict_booleans(field, value):
    error = error_of(merge.parse_patch, {field: value})
    assert (error.code, error.param) == ("invalid_parameters", field)


def test_external_ids_are_strings_of_at_most_128_or_null():
    assert apply(patch={"projectId": "p", "userId": None})["project_id"] == "p"
    assert error_of(merge.parse_patch, {"assistantId": 5}).param == "assistantId"
    assert error_of(merge.parse_patch, {"userId": "u" * 129}).code == "invalid_parameters"


@pytest.mark.parametrize("field", ["version", "messageCount", "createdAt", "id", "organizationId"])
def test_read_only_fields_are_rejected_with_param(field):
    error = error_of(merge.parse_patch, {field: 1})
    assert (error.code, error.param) == ("invalid_parameters", field)
    assert "read-only" in error.message


def test_unknown_fields_are_rejected_with_param():
    error = error_of(merge.parse_patch, {"colour": "red"})
    assert (error.code, error.param) == ("invalid_parameters", "colour")


@pytest.mark.parametrize(
    "patch",
    [
        {"title": "a\x00b"},
        {"metadata": {"k": "a\x00"}},
        {"metadata": {"k\x00": "v"}},
        {"metadata": {"k": ["ok", "\x00"]}},
        {"variables": {"k": "\x00"}},
        {"tags": ["a\x00"]},
        {"projectId": "\x00"},
    ],
)
def test_a_nul_character_anywhere_is_invalid_parameters(patch):
    assert error_of(merge.parse_patch, patch).code == "invalid_parameters"


def test_the_body_must_be_an_object():
    assert error_of(merge.parse_patch, ["title"]).code == "invalid_parameters"


def test_diff_reports_map_keys_and_fields_separately():
    old = {**merge.DEFAULT_STATE, "metadata": {"a": "1", "b": "2"}, "title": "x"}
    new = {**old, "metadata": {"a": "1", "c": "3"}, "title": "y", "is_pinned": True}
    assert merge.diff(old, new) == {
        "metadata": {"b": {"from": "2", "to": None}, "c": {"from": None, "to": "3"}},
        "title": {"from": "x", "to": "y"},
        "isPinned": {"from": False, "to": True},
    }


def test_an_equal_state_has_no_diff():
    state = {**merge.DEFAULT_STATE, "metadata": {"a": "1"}}
    assert merge.diff(state, merge.apply_patch(state, merge.parse_patch({"metadata": {"a": "1"}}))) == {}


def test_messages_are_checked():
    assert merge.parse_message({"role": "user", "content": "hi"})["metadata"] == {}
    assert error_of(merge.parse_message, {"role": "robot", "content": "hi"}).param == "role"
    assert error_of(merge.parse_message, {"role": "user", "content": 5}).param == "content"
    assert error_of(merge.parse_message, {"role": "user", "content": "x" * 100_001}).param == "content"
    too_many = {f"k{i}": "v" for i in range(17)}
    error = error_of(merge.parse_message, {"role": "user", "content": "", "metadata": too_many})
    assert error.code == "metadata_limit_exceeded"


@pytest.mark.parametrize(
    "old, new, patch",
    [
        ({"a": "1", "b": "2"}, {"a": "1", "b": "3", "c": "4"}, {"b": "3", "c": "4"}),
        ({"a": "1", "b": "2"}, {"b": "2"}, {"a": None}),
        ({"a": "1"}, {"a": "1"}, {}),
        ({"a": "1"}, None, None),
    ],
)
def test_map_patch_is_the_patch_that_merge_map_turns_old_into_new(old, new, patch):
    assert merge.map_patch(old, new) == patch
    assert merge.merge_map(old, merge.map_patch(old, new)) == (new or {})
