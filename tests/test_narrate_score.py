"""The narration benchmark's scoring (pure): recall of named interactive elements, role
accuracy and Kendall tau of reading order, pixel narration against the tree."""

from __future__ import annotations

from guiagent.bench.narrate import kendall_tau, score
from guiagent.narrate.narrator import finish
from guiagent.narrate.schema import Item, Region


def _n(items: list[Item]) -> object:
    return finish([Region(kind="body", items=items)], "browser", 0)


def _i(role: str, label: str, x: float, y: float, source: str = "ax-tree") -> Item:
    return Item(role=role, label=label, box=[x, y, 80, 24], source=source)  # type: ignore[arg-type]


def test_kendall_tau() -> None:
    assert kendall_tau([0, 1, 2, 3]) == 1.0
    assert kendall_tau([3, 2, 1, 0]) == -1.0
    assert kendall_tau([1, 0, 2, 3]) == 2 / 3


def test_score_matches_labels_and_fields_by_place() -> None:
    tree = _n(
        [
            _i("heading", "Sign in", 10, 10),
            _i("textbox", "Email", 100, 50),
            _i("password", "Password", 100, 90),
            _i("button", "Sign in", 10, 130),
            _i("link", "Help", 200, 130),
        ]
    )
    pixels = _n(
        [
            _i("heading", "Sign in", 10, 10, "ocr"),
            _i("textbox", "ada@example.org", 102, 50, "ocr"),  # named by what it holds
            _i("textbox", "Password", 100, 91, "ocr"),
            _i("text", "Help", 201, 130, "ocr"),  # the link, read as text: a wrong role
            _i("button", "Sign in", 10, 131, "ocr"),  # read after the link: order swapped
        ]
    )
    result = score(tree, pixels)  # type: ignore[arg-type]
    assert result["elements"] == 4 and result["found"] == 4 and result["recall"] == 1.0
    assert result["role_accuracy"] == 0.75  # password counts as a field; the link does not
    assert result["wrong_roles"] == ["Help: link -> text"]
    assert result["kendall_tau"] == 2 / 3
    lonely = score(tree, _n([_i("button", "Sign in", 10, 131, "ocr")]))  # type: ignore[arg-type]
    assert lonely["recall"] == 0.25 and "Email, textbox" in lonely["missed"]
