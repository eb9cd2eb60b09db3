"""Fixtures of the encoding tests (the tiny GPT-2 and the synthetic log come from ``tests/conftest.py``)."""

from __future__ import annotations

import pytest

from streamrec.catalog import Catalog
from streamrec.synthetic import SyntheticLog


@pytest.fixture()
def catalog(synthetic_log: SyntheticLog) -> Catalog:
    return Catalog(synthetic_log.items)
