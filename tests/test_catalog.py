from pathlib import Path

import pytest

from streamrec.catalog import Catalog, Item, read_items
from streamrec.errors import CatalogError


def test_loads_csv_with_free_attributes(tmp_path: Path) -> None:
    path = tmp_path / "items.csv"
    path.write_text("item_id,title,category,brand\n1,Toy Story,Animation,Pixar\n2,Heat,Crime,\n")
    catalog = Catalog.from_file(path)
    assert catalog.get("1") == Item("1", "Toy Story", "Animation", {"brand": "Pixar"})
    assert catalog.get("2") == Item("2", "Heat", "Crime", {})
    assert catalog.ids == ["1", "2"]


def test_loads_jsonl_with_column_map(tmp_path: Path) -> None:
    path = tmp_path / "items.jsonl"
    path.write_text('{"sku": "a1", "name": "Kettle", "dept": "Kitchen", "attributes": {"color": "red"}}\n\n')
    item = next(read_items(path, {"item_id": "sku", "title": "name", "category": "dept"}))
    assert item == Item("a1", "Kettle", "Kitchen", {"color": "red"})


def test_html_entities_in_item_text_are_unescaped(tmp_path: Path) -> None:
    # A scraped shop catalogue: about one Amazon Beauty title in ten carries an entity.
    path = tmp_path / "items.tsv"
    path.write_text("item_id\ttitle\tcategory\n7\tSalt &amp; Pepper &quot;Duo&quot; 2oz\tBath &amp; Body\n"
                    "8\tAT&T Plan\t\n")
    first, second = read_items(path)
    assert (first.title, first.category) == ('Salt & Pepper "Duo" 2oz', "Bath & Body")
    assert second.title == "AT&T Plan"  # a bare ampersand is text, left as it is


@pytest.mark.parametrize(
    ("name", "body", "message"),
    [
        ("items.csv", "item_id,title\n,Nameless\n", "without"),
        ("items.csv", "item_id,title\n3,\n", "has no 'title'"),
        ("items.jsonl", "{not json\n", "not JSON"),
        ("items.txt", "x", "expected a .csv"),
    ],
)
def test_bad_files_raise_catalog_errors(tmp_path: Path, name: str, body: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(body)
    with pytest.raises(CatalogError, match=message):
        list(read_items(path))


def test_missing_file() -> None:
    with pytest.raises(CatalogError, match="does not exist"):
        Catalog.from_file("/nonexistent/items.csv")


def test_unknown_items_get_fallback_text_and_are_counted() -> None:
    catalog = Catalog([Item("1", "Heat", "Crime")])
    assert catalog.display("404") == "item 404"
    assert catalog.display("404") == "item 404"
    assert catalog.unknown_lookups == 2
    index = catalog.index_of("404")
    assert catalog.ids[index] == "404" and not catalog.is_known("404")


def test_items_added_while_running_bump_revision_and_changes() -> None:
    catalog = Catalog()
    index = catalog.index_of("7")  # seen in an event first
    before = catalog.changes
    assert catalog.upsert(Item("7", "Heat", "Crime")) is True
    assert catalog.revision(index) == 1 and catalog.changes == before + 1
    assert catalog.upsert(Item("7", "Heat", "Crime")) is False  # unchanged text
    assert catalog.upsert(Item("7", "Heat (1995)", "Crime")) is True
    assert catalog.revision(index) == 2 and catalog.index_of("7") == index


def test_an_item_record_with_non_text_keys_renders() -> None:
    from streamrec.catalog import item_from_mapping
    from streamrec.text import TextTemplate

    item = item_from_mapping({"item_id": "3", "title": "Kite", 1: "x", "brand": "A"})  # type: ignore[dict-item]
    assert item.attributes == {"1": "x", "brand": "A"}
    assert "Kite" in TextTemplate.english().render_item(item)
