"""Catalog data is validated at load; settings come from the environment with typed defaults."""

from __future__ import annotations

import copy
import pathlib
import tomllib

import pytest

from libs.catalog import CATALOG_FILE, CatalogError, default_catalog, parse_catalog
from libs.settings import Settings, SettingsError, markdown_table

ROOT = pathlib.Path(__file__).resolve().parents[2]


def raw():
    with open(CATALOG_FILE, "rb") as fh:
        return tomllib.load(fh)


def test_packages_formats_and_styles():
    cat = default_catalog()
    assert [p.id for p in cat.packages] == ["starter", "professional", "executive"]
    assert cat.package("executive").allows_format("portrait")
    assert not cat.package("starter").allows_format("portrait")
    assert not cat.package("professional").allows_format("portrait")
    assert cat.format("portrait").size == (1024, 1280)
    assert cat.format("standard").size == (1536, 1024)
    style = cat.style("navy:suit")
    assert style.id == "navy:suit" and style.backdrop.rgb[0] == (0x2A, 0x3B, 0x5C)
    assert len(cat.all_styles()) == len(cat.backdrops) * len(cat.clothing)
    assert [s.id for s in cat.preselected_styles("professional")] == ["studio-grey:suit", "office:blazer"]


@pytest.mark.parametrize("bad", ["navy", "navy:", "nowhere:suit", "navy:kilt", ""])
def test_unknown_styles_are_refused(bad):
    assert not default_catalog().is_style(bad)
    with pytest.raises(CatalogError):
        default_catalog().style(bad)


def broken(mutate):
    data = copy.deepcopy(raw())
    mutate(data)
    return data


@pytest.mark.parametrize(
    "mutate, fragment",
    [
        (lambda d: d["packages"][0].update(preselected=["navy:kilt"]), "unknown clothing"),
        (lambda d: d["packages"][0].update(formats=["square"]), "unknown format"),
        (lambda d: d["packages"][0].update(max_styles=0), "at least 1"),
        (lambda d: d["formats"][0].update(width=1000), "does not match ratio"),
        (lambda d: d["backdrops"][0].update(colors=["blue"]), "colors"),
        (lambda d: d["clothing"].append(dict(d["clothing"][0])), "duplicate id"),
        (lambda d: d["backdrops"][0].update(id="Bad Id"), "lower-case"),
        (lambda d: d["packages"][0].pop("label"), "missing 'label'"),
        (lambda d: d.update(formats=[]), "at least one entry"),
    ],
)
def test_invalid_catalog_data_fails_at_load(mutate, fragment):
    with pytest.raises(CatalogError, match=fragment):
        parse_catalog(broken(mutate))


def test_settings_defaults_are_the_embedded_mode():
    s = Settings()
    assert s.BROKER_URL == "memory://" and s.embedded_broker
    assert s.database_url.startswith("sqlite:///") and s.database_url.endswith("headshots.db")
    assert s.engine == "studio"
    assert s.replace(MODEL_DIR="/models/sd").engine == "diffusion"


def test_settings_are_read_and_typed_from_the_environment():
    env = {
        "PORT": "9001",
        "IMG2IMG": "yes",
        "GUIDANCE_SCALE": "5.5",
        "BROKER_URL": "amqp://h/",
        "UNRELATED": "x",
    }
    s = Settings.from_env(env)
    assert (s.PORT, s.IMG2IMG, s.GUIDANCE_SCALE, s.BROKER_URL) == (9001, True, 5.5, "amqp://h/")
    assert not s.embedded_broker
    assert Settings.from_env(env, PORT=1).PORT == 1


@pytest.mark.parametrize("name, value", [("PORT", "eighty"), ("IMG2IMG", "maybe"), ("GUIDANCE_SCALE", "x")])
def test_bad_setting_values_name_the_setting(name, value):
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: value})


def test_readme_lists_every_setting():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert markdown_table() in readme, "README's settings table is stale: paste `python -m libs.settings`"


def test_folders_default_under_var_dir_and_can_be_moved(tmp_path):
    s = Settings(VAR_DIR=str(tmp_path))
    assert s.blob_dir == tmp_path / "blobs"
    assert s.person_model_dir == tmp_path / "person-models"
    assert s.mail_dir == tmp_path / "mail"
    moved = s.replace(BLOB_DIR="/data/blobs", PERSON_MODEL_DIR="/data/person-models")
    assert (str(moved.blob_dir), str(moved.person_model_dir)) == ("/data/blobs", "/data/person-models")
