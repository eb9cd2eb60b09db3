"""A window's text chunks, each tokenized on its own, join into the rendered window."""

from __future__ import annotations

from streamrec.catalog import Catalog
from streamrec.encoding.event_inputs import chunk_text
from streamrec.events import Event
from streamrec.synthetic import SyntheticLog
from streamrec.text import TextTemplate


def test_chunked_text_is_the_rendered_window(catalog: Catalog, synthetic_log: SyntheticLog) -> None:
    template = TextTemplate.for_language("en", time_gaps=True)
    events = [Event("u", e.item_id, e.action, i * 7_200_000) for i, e in enumerate(synthetic_log.events[:5])]
    chunks = [chunk_text(template, catalog, e, events[i - 1] if i else None) for i, e in enumerate(events)]
    assert "".join(chunks) == template.render_window(events, catalog)
    assert chunks[1].startswith("; (2 hours later); ")
