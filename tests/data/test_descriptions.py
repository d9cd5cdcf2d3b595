"""Class descriptions files (CuPL / APE JSON): matched to a data set's classes, every mistake one line naming the
file and the class."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.data.descriptions import load_descriptions
from pipeline.errors import ClipCacheError

CLASSES = ["red_thing", "green_thing", "blue thing"]


def write(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_entries_are_matched_by_name_or_with_spaces_for_underscores(tmp_path: Path) -> None:
    data = {"blue thing": ["A blue thing."], "red thing": ["A red one.", "Red, round."],
            "green_thing": ["Green.", "Greenish.", "A green thing on a table."]}
    found = load_descriptions(write(tmp_path / "d.json", json.dumps(data)), CLASSES, "things")
    assert found.sentences == (("A red one.", "Red, round."), ("Green.", "Greenish.", "A green thing on a table."),
                               ("A blue thing.",))
    assert found.counts == [2, 3, 1] and found.flat()[2] == "Green."
    record = found.record()
    assert record["file"] == "d.json" and record["counts"] == [2, 3, 1] and len(record["sha256"]) == 64
    other = load_descriptions(write(tmp_path / "e.json", json.dumps({**data, "blue thing": ["A bluish thing."]})),
                              CLASSES, "things")
    assert other.record()["sha256"] != record["sha256"]  # one sentence changed: another text file


@pytest.mark.parametrize(("text", "says"), [
    ('{"red thing": ["a"], "green_thing": ["b"]}', "has no descriptions of class 'blue thing' of data set 'things' "
                                                   "(1 class(es) missing)"),
    ('{"red thing": ["a"], "green_thing": [], "blue thing": ["c"]}', "class 'green_thing' has no description"),
    ('{"red thing": ["a"], "green_thing": ["b"], "blue thing": ["c"], "purple": ["d"]}',
     "'purple' is no class of data set 'things'"),
    ('{"red thing": ["a"], "red thing": ["b"]}', "the key 'red thing' appears twice"),
    ('{"red thing": ["a"], "red_thing": ["b"]}', "class 'red_thing' has two entries"),
    ('{"red thing": ["a"], "green thing": ["b"], "blue_thing": ["c"], "blue thing": ["d"]}',
     "class 'blue thing' has two entries"),
    ('{"red thing": "a"}', "class 'red thing' must be a list of non-empty sentences"),
    ('{"red thing": ["a", ""]}', "class 'red thing' must be a list of non-empty sentences"),
    ('["a"]', "must hold an object of class name -> list of sentences"),
    ('{"red thing": ', "is not JSON: "),
])
def test_bad_files_are_one_line_naming_file_and_class(tmp_path: Path, text: str, says: str) -> None:
    path = write(tmp_path / "bad.json", text)
    with pytest.raises(ClipCacheError) as refused:
        load_descriptions(path, CLASSES, "things")
    assert str(refused.value).startswith(f"descriptions file {path!r}") and says in str(refused.value)
    assert "\n" not in str(refused.value)


def test_a_missing_file_or_a_folder_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ClipCacheError, match=r"'.*nope\.json' cannot be read: No such file or directory"):
        load_descriptions(str(tmp_path / "nope.json"), CLASSES, "things")
    with pytest.raises(ClipCacheError, match="is not a regular file"):
        load_descriptions(str(tmp_path), CLASSES, "things")
