"""The state store's batches: one request's reads and writes in few round trips, all or nothing."""

from __future__ import annotations

import pytest

from idp.services import Services


def test_a_committed_batch_writes_everything_at_the_end(services: Services) -> None:
    state = services.state
    state.put("old", b"1", 60)
    with state.batch() as batch:
        state.put("new", b"2", 60)
        state.delete("old")
        assert state.get("new") == b"2" and state.get("old") is None  # the batch sees its own writes
        batch.commit()
    assert state.get("new") == b"2" and state.get("old") is None


def test_a_batch_left_without_commit_writes_nothing(services: Services) -> None:
    state = services.state
    state.put("kept", b"1", 60)
    with pytest.raises(ValueError), state.batch():
        state.put("half", b"2", 60)
        state.delete("kept")
        raise ValueError("the request failed half-way")
    assert state.get("half") is None and state.get("kept") == b"1"
    with state.batch():
        state.put("unwanted", b"3", 60)
    assert state.get("unwanted") is None


def test_a_key_read_twice_in_a_batch_is_fetched_once(services: Services) -> None:
    state = services.state
    state.put("k", b"before", 60)
    with state.batch():
        assert state.get("k") == b"before"
        state._raw_put("k", b"changed elsewhere", 60)  # another worker, between two reads of one request
        assert state.get("k") == b"before"
    assert state.get("k") == b"changed elsewhere"


def test_take_is_immediate_and_single_use_even_inside_a_batch(services: Services) -> None:
    state = services.state
    state.put("code", b"c", 60)
    with state.batch():
        assert state.get("code") == b"c"
        assert state.take("code") == b"c"
        assert state._raw_get("code") is None  # gone from the store at once, not at commit
        assert state.get("code") is None and state.take("code") is None
    with state.batch() as batch:
        state.put("local", b"l", 60)
        assert state.take("local") == b"l"  # never stored, so taken locally
        state.put("gone", b"g", 60)
        state.delete("gone")
        assert state.take("gone") is None
        batch.commit()
    assert state.get("local") is None and state.get("gone") is None


def test_counters_are_immediate_inside_a_batch(services: Services) -> None:
    state = services.state
    with state.batch():
        assert state.incr("n", 60) == 1
    assert state.incr("n", 60) == 2


def test_batches_do_not_nest(services: Services) -> None:
    with services.state.batch(), pytest.raises(RuntimeError, match="do not nest"), services.state.batch():
        pass
