"""scripts/compare_sites.py: two renders are the same notes when what a reader sees is
identical and only figure coordinates (1e-3 px) and full-precision open-data floats (1e-6
relative) moved; anything else is a difference, named with its file."""

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "compare_sites.py"
spec = importlib.util.spec_from_file_location("compare_sites", SCRIPT)
compare_sites = importlib.util.module_from_spec(spec)
spec.loader.exec_module(compare_sites)

PAGE = ('<html><body><h1>Effet 0,24</h1><figure><svg width="300pt" viewBox="0 0 300 120">'
        '<path d="M 302.83533 809.321492 L 260.98885 781.544504" style="fill: none"/>'
        '<text x="20.5" y="100" transform="rotate(-0 20.5 100)">{label}</text></svg></figure>'
        '<p>{para}</p></body></html>')


def site(root: Path, *, label="0.24 [0.20, 0.29]", para="IC 95 %", x="302.83533",
         data=None, csv="key,yi,code\nA,0.2420242216900869,1.10\n"):
    (root / "data").mkdir(parents=True)
    (root / "note.html").write_text(PAGE.format(label=label, para=para).replace(
        "302.83533", x), encoding="utf-8")
    (root / "data" / "note.json").write_text(json.dumps(data or {
        "estimate": 0.2420242216900869, "k": 1093, "outcome": "reading", "ci": [0.19, 0.28]}))
    (root / "data" / "note.csv").write_text(csv)
    (root / ".build").mkdir()
    (root / ".build" / "note.json").write_text(str(root))  # the render's own record: skipped
    return root


def verdicts(a, b):
    return {str(p): (v, d) for p, v, d in compare_sites.compare_sites(a, b)}


def test_identical_renders_are_the_same(tmp_path):
    assert verdicts(site(tmp_path / "a"), site(tmp_path / "b")) == {}
    assert compare_sites.main([str(tmp_path / "a"), str(tmp_path / "b")]) == 0


def test_a_coordinate_moved_below_the_tolerance_is_the_same_note(tmp_path, capsys):
    out = verdicts(site(tmp_path / "a"), site(tmp_path / "b", x="302.835331"))
    assert out["note.html"][0] == "same" and "1 figure coordinates moved" in out["note.html"][1]
    assert compare_sites.main([str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    assert "the same notes" in capsys.readouterr().out


@pytest.mark.parametrize("change, file", [
    ({"x": "303.9"}, "note.html"),                      # a figure moved a visible distance
    ({"label": "0.25 [0.20, 0.29]"}, "note.html"),      # a number a figure shows
    ({"para": "IC 90 %"}, "note.html"),                 # the text around the figures
    ({"data": {"estimate": 0.2430242216900869, "k": 1093, "outcome": "reading",
               "ci": [0.19, 0.28]}}, "data/note.json"),  # an open-data number, 4e-3 off
    ({"data": {"estimate": 0.2420242216900869, "k": 1094, "outcome": "reading",
               "ci": [0.19, 0.28]}}, "data/note.json"),  # an integer
    ({"data": {"estimate": 0.2420242216900869, "k": 1093, "outcome": "Reading",
               "ci": [0.19, 0.28]}}, "data/note.json"),  # a string
    ({"data": {"estimate": 0.2420242216900869, "k": 1093, "outcome": "reading",
               "ci": [0.19, 0.281]}}, "data/note.json"),  # a rounded float is a float too
    ({"csv": "key,yi,code\nA,0.2420242216900869,1.1\n"}, "data/note.csv"),  # a code is text
    ({"csv": "key,yi,code\nA,0.2430242216900869,1.10\n"}, "data/note.csv"),
])
def test_what_a_reader_would_see_differ_is_a_difference(tmp_path, change, file, capsys):
    out = verdicts(site(tmp_path / "a"), site(tmp_path / "b", **change))
    assert out[file][0] == "different", out
    assert compare_sites.main([str(tmp_path / "a"), str(tmp_path / "b")]) == 1
    assert f"{file}: different" in capsys.readouterr().out


def test_a_texts_rotation_by_zero_is_no_transform_and_any_other_is(tmp_path):
    """matplotlib writes rotate(-0 x y) on aligned texts; the notes drop it (the page looks
    the same to the pixel: tests/test_browser.py). Without it a page is the same note; a
    text turned by any angle is a difference."""
    a = site(tmp_path / "a")
    b = site(tmp_path / "b")
    page = b / "note.html"
    page.write_text(page.read_text().replace(' transform="rotate(-0 20.5 100)"', ""))
    out = verdicts(a, b)
    assert out["note.html"][0] == "same", out
    page.write_text(page.read_text().replace('<text x="20.5"',
                                             '<text transform="rotate(-90 20.5 100)" x="20.5"'))
    assert verdicts(a, b)["note.html"][0] == "different"


def test_full_precision_floats_may_move_within_the_tolerance(tmp_path):
    data = {"estimate": 0.2420242216900869 * (1 + 3e-9), "k": 1093, "outcome": "reading",
            "ci": [0.19, 0.28]}
    csv = "key,yi,code\nA,0.24202422182209962,1.10\n"
    out = verdicts(site(tmp_path / "a"), site(tmp_path / "b", data=data, csv=csv))
    assert out["data/note.json"][0] == "same" and out["data/note.csv"][0] == "same"


def test_a_file_in_one_render_only_and_a_bad_folder_are_reported(tmp_path, capsys):
    a, b = site(tmp_path / "a"), site(tmp_path / "b")
    (b / "extra.html").write_text("<p>x</p>")
    assert verdicts(a, b)["extra.html"][0] == "missing"
    assert compare_sites.main([str(a), str(tmp_path / "nowhere")]) == 2
    assert "not a folder" in capsys.readouterr().err
