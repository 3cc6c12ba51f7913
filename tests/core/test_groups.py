import pytest

from fashionrec.core.errors import ConfigError
from fashionrec.core.groups import DEFAULT_GROUPS as GROUPS
from fashionrec.core.groups import load_group_mapping, mapping_from_dict, normalize_category

DESIGN_VALID_CATEGORIES = {
    "tops", "blouses", "shirts", "t-shirts",
    "pants", "skirts", "shorts", "jeans", "trousers", "bottoms",
    "shoes", "boots", "heels", "sneakers", "sandals",
    "bags", "handbags", "purses", "clutches",
}


def test_default_mapping_is_the_designs_list():
    mapping = load_group_mapping()
    for raw in DESIGN_VALID_CATEGORIES:
        assert mapping.group_of(raw) in GROUPS, raw
    assert mapping.group_of("T-Shirts") == "tops"
    assert mapping.group_of("jeans") == "bottoms"
    assert mapping.group_of("Sneakers") == "shoes"
    assert mapping.group_of("clutches") == "bags"


@pytest.mark.parametrize("raw", ["T-Shirts", "t shirts", "TSHIRT", " t-shirt ", "T.Shirts"])
def test_matching_ignores_case_space_hyphen_punctuation_plural(raw):
    assert load_group_mapping().group_of(raw) == "tops"


def test_other_categories_are_not_mapped():
    mapping = load_group_mapping()
    for raw in ["dress", "necklace", "sunglasses", "hat", "", None]:
        assert mapping.group_of(raw) is None


def test_semantic_category_is_a_fallback():
    mapping = load_group_mapping()
    assert mapping.group_of("sweater", "tops") == "tops"
    assert mapping.group_of("gown", "all-body") is None


def test_a_category_in_two_groups_is_refused():
    with pytest.raises(ConfigError, match="both"):
        mapping_from_dict({"tops": ["shirts"], "bottoms": ["Shirts"]})


def test_any_set_of_two_or_more_groups_is_data():
    mapping = mapping_from_dict({"tops": ["shirts"], "bottoms": ["jeans"], "dresses": ["dresses", "jumpsuit"],
                                 "outerwear": ["jackets", "coats"]})
    assert mapping.names == ("tops", "bottoms", "dresses", "outerwear")  # in the table's order
    assert mapping.group_of("Jumpsuits") == "dresses" and mapping.group_of("coat") == "outerwear"
    assert "dresses" in mapping.to_toml() and load_group_mapping().names == GROUPS


@pytest.mark.parametrize("table, message", [
    ({"hats": ["caps"]}, "at least 2"),
    ({"Tops!": ["shirts"], "bags": ["bags"]}, "lower-case words"),
    ({"tops": [], "bags": ["bags"]}, "lists no category"),
    ({"tops": "shirts", "bags": ["bags"]}, "list of category names"),
])
def test_a_bad_groups_table_is_refused_saying_why(table, message):
    with pytest.raises(ConfigError, match=message):
        mapping_from_dict(table)


def test_mapping_file_override(tmp_path):
    f = tmp_path / "groups.toml"
    f.write_text('[groups]\ntops = ["Kurtas"]\nbags = ["Backpacks"]\n')
    mapping = load_group_mapping(f)
    assert mapping.group_of("kurtas") == "tops"
    assert mapping.group_of("jeans") is None
    assert normalize_category("Backpacks") == "backpack"
