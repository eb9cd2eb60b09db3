"""Incremental (KV-cached) window encoding gives the vectors of a full forward over the same events."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from encodingkit import TEMPLATE, close, item_reference, reference, user_events, view_events

from streamrec.catalog import Catalog, Item
from streamrec.config import load_settings
from streamrec.encoding import HFEncoder, IncrementalWindowEncoder
from streamrec.encoding.kv_cache import SlotPool
from streamrec.encoding.views import event_key
from streamrec.errors import UsageError
from streamrec.events import Event
from streamrec.synthetic import SyntheticLog


def test_growing_window_encodes_only_new_tokens_and_matches_a_full_forward(
        tiny_encoder: HFEncoder, catalog: Catalog, synthetic_log: SyntheticLog) -> None:
    events = user_events(synthetic_log, 12)
    encoder = IncrementalWindowEncoder(tiny_encoder, TEMPLATE, catalog, max_events=20, slack_events=5)
    for n in range(1, len(events) + 1):
        before = encoder.stats.positions
        vector = encoder.encode_windows(["u"], [events[:n]])[0]
        close(vector, reference(tiny_encoder, catalog, events[:n]))
        chunk = TEMPLATE.render_window(events[:n], catalog)[len(TEMPLATE.render_window(events[:n - 1], catalog)):]
        assert encoder.stats.positions - before == len(tiny_encoder.tokenizer(chunk)["input_ids"])
    assert dict(encoder.stats.resets) == {"new": 1} and encoder.stats.appended_events == 11


def test_several_new_events_of_one_user_are_one_append(
        tiny_encoder: HFEncoder, catalog: Catalog, synthetic_log: SyntheticLog) -> None:
    events = user_events(synthetic_log, 9)
    encoder = IncrementalWindowEncoder(tiny_encoder, TEMPLATE, catalog, max_events=20, slack_events=5)
    encoder.encode_windows(["u"], [events[:4]])
    vector = encoder.encode_windows(["u"], [events])[0]  # five events arrived in one micro-batch
    close(vector, reference(tiny_encoder, catalog, events))
    assert encoder.stats.forwards == 2 and encoder.stats.appended_events == 5
    with pytest.raises(UsageError, match="twice"):
        encoder.encode_windows(["u", "u"], [events, events])


def test_window_sliding_past_its_slack_is_cut_back_to_n_and_reencoded(
        tiny_encoder: HFEncoder, catalog: Catalog, synthetic_log: SyntheticLog) -> None:
    n, slack = 4, 2
    events = user_events(synthetic_log, 14)
    encoder = IncrementalWindowEncoder(tiny_encoder, TEMPLATE, catalog, max_events=n, slack_events=slack)
    sizes = []
    for end in range(1, len(events) + 1):
        window = events[max(0, end - n):end]  # what the WindowStore hands over: the last N events
        vector = encoder.encode_windows(["u"], [window])[0]
        view = view_events(encoder, "u")
        sizes.append(len(view))
        assert view[-len(window):] == window  # the view ends with the window ...
        close(vector, reference(tiny_encoder, catalog, view))  # ... and the vector reads exactly the view
    assert sizes == [1, 2, 3, 4, 5, 6, 4, 5, 6, 4, 5, 6, 4, 5]  # N..N+S, then back to N
    assert encoder.stats.resets == {"new": 1, "slack": 3}


def test_a_view_cut_short_by_the_position_budget_is_still_extended(
        tiny_model_dir: Path, catalog: Catalog, synthetic_log: SyntheticLog) -> None:
    # 40 positions hold only a few events of the 20-event window: resets keep the newest that fit
    # (32 positions), and the next window, which still starts with older events, extends that view
    small = HFEncoder(load_settings(encoder={"model": str(tiny_model_dir), "max_length": 40}).encoder)
    events = user_events(synthetic_log, 30)
    encoder = IncrementalWindowEncoder(small, TEMPLATE, catalog, max_events=20, slack_events=5)
    partial = 0
    for end in range(1, len(events) + 1):
        window = events[max(0, end - 20):end]
        vector = encoder.encode_windows(["u"], [window])[0]
        view = view_events(encoder, "u")
        assert view == window[-len(view):]  # the view is the window's newest events ...
        partial += len(view) < len(window)
        close(vector, reference(small, catalog, view))  # ... and the vector reads exactly them
    assert partial > 10
    assert set(encoder.stats.resets) == {"new", "positions"}  # never "not_extension"
    assert encoder.stats.appended_events > encoder.stats.resets["positions"]
    late = Event("u", events[0].item_id, events[0].action, events[-1].timestamp - 1, "late")
    window = [*events[-20:-1], late, events[-1]]  # inside the view: not an extension
    close(encoder.encode_windows(["u"], [window])[0], reference(small, catalog, view_events(encoder, "u")))
    assert encoder.stats.resets["not_extension"] == 1 and view_events(encoder, "u")[-2:] == window[-2:]


def test_users_of_very_different_lengths_share_a_forward(
        tiny_encoder: HFEncoder, catalog: Catalog, synthetic_log: SyntheticLog) -> None:
    lengths = {"a": 1, "b": 3, "c": 9, "d": 16}
    windows = {u: user_events(synthetic_log, k, u, start=5 * i) for i, (u, k) in enumerate(lengths.items())}
    for layout in ("ragged", "padded", "pooled"):
        batched = IncrementalWindowEncoder(tiny_encoder, TEMPLATE, catalog, max_events=30, slack_events=4,
                                           layout=layout)
        batched.encode_windows(list(windows), [w[:-1] or w for w in windows.values()])  # caches of 0..15 events
        batched._scratch[:] = [torch.full((1 << 20,), float("nan"))]  # padding must never read old memory
        forwards = batched.stats.forwards
        vectors = batched.encode_windows(list(windows), list(windows.values()))
        assert batched.stats.forwards == forwards + 1  # one forward for all four users
        for user, vector in zip(windows, vectors, strict=True):
            close(vector, reference(tiny_encoder, catalog, windows[user]))
        longer = {u: user_events(synthetic_log, k + 1, u, start=5 * i) for i, (u, k) in enumerate(lengths.items())}
        vectors = batched.encode_windows(list(longer), list(longer.values()))  # reads what the last call stored
        for user, vector in zip(longer, vectors, strict=True):
            close(vector, reference(tiny_encoder, catalog, longer[user]))
        assert batched.stats.resets == {"new": 4}


def test_eviction_keeps_the_cache_under_budget_and_a_miss_reencodes(
        tiny_encoder: HFEncoder, catalog: Catalog, synthetic_log: SyntheticLog) -> None:
    windows = {u: user_events(synthetic_log, 6, u, start=7 * i) for i, u in enumerate("abc")}
    probe = IncrementalWindowEncoder(tiny_encoder, TEMPLATE, catalog, max_events=10, slack_events=2)
    probe.encode_windows(["a"], [windows["a"]])
    budget = int(probe.stats.cache_bytes * 1.5)  # room for one user, not two
    encoder = IncrementalWindowEncoder(tiny_encoder, TEMPLATE, catalog, max_events=10, slack_events=2,
                                       kv_cache_bytes=budget)
    encoder.encode_windows(list(windows), list(windows.values()))
    assert encoder.stats.evictions == 2 and 0 < encoder.stats.cache_bytes <= budget
    assert encoder.view("a") == [] and encoder.view("c") != []  # least recently used went first
    longer = user_events(synthetic_log, 7, "a", start=0)
    vector = encoder.encode_windows(["a"], [longer])[0]
    assert encoder.stats.resets["new"] == 4  # a miss is a fresh encode
    close(vector, reference(tiny_encoder, catalog, longer))
    assert encoder.stats.cache_bytes <= budget


def test_pooled_slots_are_reused_and_idle_users_evicted(
        tiny_encoder: HFEncoder, catalog: Catalog, synthetic_log: SyntheticLog) -> None:
    windows = {u: user_events(synthetic_log, 5, u, start=6 * i) for i, u in enumerate("abc")}
    nothing = IncrementalWindowEncoder(tiny_encoder, TEMPLATE, catalog, layout="pooled", kv_cache_bytes=1)
    assert nothing.pool is None and nothing.kv_cache_bytes == 0  # not one slot fits: no cache at all
    slot = SlotPool.bytes_per_slot(2, 4, 16, tiny_encoder.max_length, torch.float32)  # the tiny GPT-2's shape
    encoder = IncrementalWindowEncoder(tiny_encoder, TEMPLATE, catalog, max_events=10, slack_events=2,
                                       layout="pooled", kv_cache_bytes=2 * slot)
    assert encoder.pool is not None and encoder.pool.n_slots == 2
    vectors = encoder.encode_windows(list(windows), list(windows.values()))  # three users, two slots
    for user, vector in zip(windows, vectors, strict=True):
        close(vector, reference(tiny_encoder, catalog, windows[user]))
    assert [bool(encoder.view(u)) for u in "abc"] == [True, True, False] and encoder.stats.evictions == 0
    longer = user_events(synthetic_log, 6, "c", start=12)
    close(encoder.encode_windows(["c"], [longer])[0], reference(tiny_encoder, catalog, longer))
    assert encoder.view("a") == [] and encoder.view("c") != [] and encoder.stats.evictions == 1
    grown = user_events(synthetic_log, 7, "b", start=6)  # b's slot is still its own
    close(encoder.encode_windows(["b"], [grown])[0], reference(tiny_encoder, catalog, grown))
    assert encoder.stats.appended_events == 2 and encoder.stats.cache_bytes == 2 * slot


def test_forget_restore_and_late_events_reset_the_view(
        tiny_encoder: HFEncoder, catalog: Catalog, synthetic_log: SyntheticLog) -> None:
    events = user_events(synthetic_log, 8)
    encoder = IncrementalWindowEncoder(tiny_encoder, TEMPLATE, catalog, max_events=10, slack_events=3)
    encoder.encode_windows(["u"], [events[:6]])
    encoder.forget(["u"])
    assert encoder.view("u") == []
    close(encoder.encode_windows(["u"], [events[:7]])[0], reference(tiny_encoder, catalog, events[:7]))
    late = Event("u", events[0].item_id, "view", events[3].timestamp - 1, "late")  # inserted before the newest
    restored = [*events[:3], late, *events[3:8]]
    close(encoder.encode_windows(["u"], [restored])[0], reference(tiny_encoder, catalog, restored))
    assert encoder.stats.resets == {"new": 2, "not_extension": 1}
    assert encoder.view("u") == [event_key(e) for e in restored]


def test_a_changed_item_text_resets_the_views_that_read_it(
        tiny_encoder: HFEncoder, synthetic_log: SyntheticLog) -> None:
    catalog = Catalog(synthetic_log.items)
    events = user_events(synthetic_log, 5)
    encoder = IncrementalWindowEncoder(tiny_encoder, TEMPLATE, catalog, max_events=10, slack_events=3)
    encoder.encode_windows(["u"], [events[:4]])
    catalog.upsert(Item(events[1].item_id, "Giant Robot 4", "Toys"))
    close(encoder.encode_windows(["u"], [events])[0], reference(tiny_encoder, catalog, events))
    assert encoder.stats.resets["text_changed"] == 1


def test_mean_pooling_is_kept_as_a_running_sum(tiny_model_dir: Path, catalog: Catalog,
                                               synthetic_log: SyntheticLog) -> None:
    mean_encoder = HFEncoder(load_settings(encoder={"model": str(tiny_model_dir), "pooling": "mean"}).encoder)
    events = user_events(synthetic_log, 6)
    incremental = IncrementalWindowEncoder(mean_encoder, TEMPLATE, catalog, max_events=10, slack_events=3)
    full = IncrementalWindowEncoder(mean_encoder, TEMPLATE, catalog, max_events=10, slack_events=3, kv_cache_bytes=0)
    for n in (2, 3, 6):
        close(incremental.encode_windows(["u"], [events[:n]])[0], full.encode_windows(["u"], [events[:n]])[0])
    assert incremental.stats.resets == {"new": 1} and full.stats.resets == {"new": 3}


def test_item_mode_incremental_equals_item_mode_full(
        tiny_encoder: HFEncoder, catalog: Catalog, synthetic_log: SyntheticLog) -> None:
    windows = {u: user_events(synthetic_log, 10, u, start=3 * i) for i, u in enumerate("abc")}
    encoder = IncrementalWindowEncoder(tiny_encoder, TEMPLATE, catalog, max_events=6, slack_events=2, mode="item")
    for end in range(1, 11):
        users = [u for u in windows if end <= len(windows[u]) - 2 * "abc".index(u)]  # different lengths
        vectors = encoder.encode_windows(users, [windows[u][max(0, end - 6):end] for u in users])
        for user, vector in zip(users, vectors, strict=True):
            view = view_events(encoder, user)
            assert 1 <= len(view) <= 8
            close(vector, item_reference(tiny_encoder, catalog, view))
    assert encoder.stats.resets["slack"] > 0 and encoder.stats.appended_positions == encoder.stats.appended_events

    # 8 positions hold 8 of a 20-event window (one per event): cut back to the newest 6, then extended
    small = HFEncoder(load_settings(encoder={"model": tiny_encoder.settings.model, "max_length": 8}).encoder)
    encoder = IncrementalWindowEncoder(small, TEMPLATE, catalog, max_events=20, slack_events=5, mode="item")
    events = user_events(synthetic_log, 30)
    for end in range(1, len(events) + 1):
        vector = encoder.encode_windows(["u"], [events[max(0, end - 20):end]])[0]
        view = view_events(encoder, "u")
        assert view == events[end - len(view):end] and len(view) <= 8
        close(vector, item_reference(small, catalog, view))
    assert set(encoder.stats.resets) == {"new", "positions"} and encoder.stats.appended_events > 15
