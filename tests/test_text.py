from streamrec.catalog import Catalog, Item
from streamrec.events import Event
from streamrec.text import TextTemplate

CATALOG = Catalog([Item("1", "Toy Story", "Animation"), Item("2", "Heat", "Crime", {"year": "1995"})])


def test_english_window_text() -> None:
    window = [Event("u", "1", "view", 0), Event("u", "2", "cart", 1), Event("u", "1", "purchase", 2)]
    assert TextTemplate.english().render_window(window, CATALOG) == (
        "viewed Toy Story (Animation); added to cart Heat (Crime); purchased Toy Story (Animation)")


def test_chinese_window_text_and_recommendation_text() -> None:
    zh = TextTemplate.chinese()
    window = [Event("u", "1", "view", 0), Event("u", "2", "view", 1), Event("u", "1", "click", 2)]
    assert zh.render_window(window, Catalog()) == "浏览商品1,浏览商品2,点击商品1"
    assert zh.render_recommendations(["A", "B", "C"]) == "推荐给您的商品有：A,B,C"


def test_time_gap_wording_comes_from_the_template() -> None:
    hours = 3_600_000
    window = [Event("u", "1", "view", 0), Event("u", "2", "view", 3 * hours), Event("u", "1", "view", 3 * hours + 5)]
    en = TextTemplate.for_language("en", time_gaps=True)
    assert en.render_window(window, CATALOG) == (
        "viewed Toy Story (Animation); (3 hours later); viewed Heat (Crime); viewed Toy Story (Animation)")
    zh = TextTemplate.for_language("zh", time_gaps=True)
    assert "(3小时后)" in zh.render_window(window, Catalog())


def test_action_words_can_be_overridden_and_unknown_actions_pass_through() -> None:
    template = TextTemplate.for_language("en", action_words={"view": "looked at"}, separator=" | ")
    window = [Event("u", "1", "view", 0), Event("u", "2", "rent", 1)]
    assert template.render_window(window, CATALOG) == "looked at Toy Story (Animation) | rent Heat (Crime)"


def test_unknown_items_render_as_fallback_and_are_counted() -> None:
    catalog = Catalog()
    assert TextTemplate.english().render_window([Event("u", "9", "view", 0)], catalog) == "viewed item 9"
    assert catalog.unknown_lookups == 1


def test_item_text_and_reasons() -> None:
    en = TextTemplate.english()
    assert en.render_item(CATALOG.get("2")) == "Heat (Crime) year: 1995"  # type: ignore[arg-type]
    assert en.render_reason(Event("u", "1", "view", 0), CATALOG) == "because you viewed Toy Story (Animation)"
    assert en.render_reason(None, CATALOG) == "popular right now"
    assert en.render_recommendations(["A", "B"]) == "Recommended for you: A, B"
