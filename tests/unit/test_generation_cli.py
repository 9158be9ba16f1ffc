"""`python -m services.generation render`: package and format default from the catalog, and a
folder of photos of two people is refused like intake refuses them (unless --allow-mixed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from libs.catalog import CatalogError, default_catalog, parse_catalog
from services.generation.__main__ import main
from tests.support.photos import astronaut_file, grace_hopper_file


@pytest.fixture
def env(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("VAR_DIR", str(tmp_path / "var"))
    return tmp_path


def test_package_and_format_default_from_the_catalog(env, capsys):
    photos = env / "photos"
    photos.mkdir()
    astronaut_file(photos)
    out = env / "out"
    code = main(["render", "--photos", str(photos), "--out", str(out), "--size", "96x64", "--quiet"])
    assert code == 0, capsys.readouterr().err
    package = default_catalog().default_package()
    assert package.id == "professional" and package.default_format == "standard"
    # professional pre-selects 2 styles, 3 headshots each; nothing chosen on top.
    files = sorted(out.iterdir())
    assert len(files) == len(package.preselected) * package.headshots_per_style
    assert {Image.open(f).size for f in files} == {(96, 64)}


def test_a_folder_of_two_people_is_refused_naming_the_odd_photo_out(env, capsys):
    photos = env / "photos"
    photos.mkdir()
    astronaut_file(photos, "a_astronaut.png")
    astronaut_file(photos, "b_astronaut_again.png")
    grace_hopper_file(photos, "c_someone_else.jpg")
    out = env / "out"
    args = ["render", "--photos", str(photos), "--out", str(out), "--size", "96x64", "--quiet"]

    assert main(args) == 2
    err = capsys.readouterr().err
    assert (
        "c_someone_else.jpg looks like a different person from a_astronaut.png, b_astronaut_again.png" in err
    )
    assert "--allow-mixed" in err
    assert not out.exists() or not any(out.iterdir())

    assert main([*args, "--allow-mixed"]) == 0
    assert any(out.iterdir())


def test_the_catalog_refuses_an_unknown_default_package():
    with pytest.raises(CatalogError, match="default_package 'gold'"):
        parse_catalog({**_catalog_data(), "default_package": "gold"})


def _catalog_data() -> dict:
    import tomllib

    import libs.catalog

    return tomllib.loads((Path(libs.catalog.__file__).parent / "catalog.toml").read_text())
