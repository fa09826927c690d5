"""The state store's batches: one request's reads and writes in few round trips, all or nothing."""

from __future__ import annotations

import json
import time

import pytest

from idp.services import Services
from idp.state import Conflict, RedisState, StateStore

pytestmark = pytest.mark.backends  # Redis Lua scripts against process memory


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


def test_a_counter_fetches_keys_in_its_round_trip_for_the_batch(services: Services) -> None:
    state = services.state
    state.put("grant", b"g", 60)
    with state.batch():
        assert state.incr("claimed", 60, prefetch=["grant", "absent", "grant"]) == 1
        state._raw_put("grant", b"changed elsewhere", 60)
        assert state.get("grant") == b"g" and state.get("absent") is None  # answered from the batch
    # Outside a batch there is nothing to keep the values in: only the count comes back.
    assert state.incr("claimed", 60, prefetch=["grant"]) == 2


def _entries(state: StateStore) -> None:
    state.put("rt:one", json.dumps({"access_token": "a1", "exp": 9}).encode(), 60)
    state.put("at:a1", json.dumps({"client_id": "c"}).encode(), 60)


def test_an_entry_and_the_entry_it_names_come_in_one_read(services: Services) -> None:
    state = services.state
    _entries(state)
    state.put("rt:dangling", json.dumps({"access_token": "gone"}).encode(), 60)
    state.put("rt:no-link", json.dumps({"exp": 9}).encode(), 60)
    state.put("rt:number", json.dumps({"access_token": 7}).encode(), 60)
    state.put("rt:not-json", b"\xff{", 60)
    link = ("access_token", "at:")
    assert state.get_linked("rt:one", link) == (json.dumps({"access_token": "a1", "exp": 9}).encode(),
                                                json.dumps({"client_id": "c"}).encode())
    assert state.get_linked("rt:absent", link) == (None, None)
    assert state.get_linked("rt:dangling", link)[1] is None
    for key in ("rt:no-link", "rt:number", "rt:not-json"):
        value, linked = state.get_linked(key, link)
        assert value is not None and linked is None
    with state.batch():
        state.get_linked("rt:one", link)
        state._raw_delete("at:a1")
        assert state.get("at:a1") is not None  # the batch keeps what it read


def test_a_consumed_key_is_deleted_by_the_commit_with_the_batch_writes(services: Services) -> None:
    state = services.state
    _entries(state)
    with state.batch() as batch:
        state.consume("rt:one")
        assert state.get("rt:one") is not None  # still readable by the request that holds it
        state.put("rt:two", b"new", 60)
        state.delete("at:a1")
        batch.commit()
    assert state.get("rt:one") is None and state.get("rt:two") == b"new" and state.get("at:a1") is None


def test_a_batch_whose_consumed_key_is_gone_writes_nothing(services: Services) -> None:
    state = services.state
    _entries(state)
    with state.batch() as batch:
        state.get("rt:one")
        state.consume("rt:one")
        state.put("rt:two", b"new", 60)
        state.delete("at:a1")
        state._raw_delete("rt:one")  # another request consumed it first
        with pytest.raises(Conflict):
            batch.commit()
    assert state.get("rt:two") is None and state.get("at:a1") is not None


def test_consume_needs_a_batch_and_a_committed_batch_takes_no_more_writes(services: Services) -> None:
    state = services.state
    with pytest.raises(RuntimeError, match="inside a state batch"):
        state.consume("k")
    with state.batch() as batch:
        state.put("k", b"1", 60)
        batch.commit()
        with pytest.raises(RuntimeError, match="committed already"):
            state.put("later", b"2", 60)
        with pytest.raises(RuntimeError, match="committed already"):
            batch.commit()
    assert state.get("k") == b"1" and state.get("later") is None


def test_the_scripts_survive_a_redis_that_forgot_them(services: Services) -> None:
    """A restarted or failed-over Redis has an empty script cache: the next call loads them again."""
    state = services.state
    if not isinstance(state, RedisState):
        pytest.skip("the embedded default runs no scripts")
    _entries(state)
    state._redis.script_flush()
    assert state.get_linked("rt:one", ("access_token", "at:"))[1] is not None
    state._redis.script_flush()
    with state.batch() as batch:
        assert state.incr("n", 60, prefetch=["rt:one"]) == 1
        state.consume("rt:one")
        state._redis.script_flush()
        batch.commit()
    assert state.get("rt:one") is None


def test_an_index_keeps_each_member_for_its_own_lifetime(services: Services) -> None:
    """What the OIDC grant families are indexed by (login session, patron): a member added a second
    ago for one second is gone, one added for a minute stays, and the set outlives its oldest member."""
    state = services.state
    state.index_add("families", "old", 1)
    state.index_add("families", "kept", 60)
    state.index_add("families", "kept", 60)  # added twice, listed once
    assert sorted(state.index_members("families")) == ["kept", "old"]
    time.sleep(1.2)
    assert state.index_members("families") == ["kept"]
    state.index_add("families", "new", 1)
    assert sorted(state.index_members("families")) == ["kept", "new"]
    assert state.index_members("none") == []


def test_an_index_is_written_at_once_even_in_a_batch_and_deleted_like_any_key(services: Services) -> None:
    state = services.state
    with state.batch():
        state.index_add("families", "a", 60)  # the batch is never committed: the index is written anyway
        assert state.index_members("families") == ["a"]
    assert state.index_members("families") == ["a"]
    state.delete("families")
    assert state.index_members("families") == []


def test_an_index_expires_with_its_last_member(services: Services) -> None:
    state = services.state
    state.index_add("short", "a", 1)
    time.sleep(1.2)
    state.index_add("short", "b", 1)
    time.sleep(1.2)
    assert state.index_members("short") == []
    if isinstance(state, RedisState):
        assert state._redis.exists(state._prefix + "short") == 0
