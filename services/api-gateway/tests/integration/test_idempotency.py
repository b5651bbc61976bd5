"""The Idempotency-Key store against real PostgreSQL: a key is claimed once, its answer
replayed, a reused or busy key refused, and a stale record (expired, or a claim its
process abandoned) taken over by the next request."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from api_gateway.app import MIGRATIONS, SCHEMA
from api_gateway.auth import Principal
from api_gateway.errors import ApiError
from api_gateway.idempotency import IdempotencyStore, Replay
from fluxpay_common.db import create_pool, migrate

TTL_HOURS = 24
LOCK_SECONDS = 20


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database_url, SCHEMA, min_size=1, max_size=12)
    await migrate(pool, SCHEMA, MIGRATIONS)
    yield pool
    await pool.close()


@pytest.fixture
def store(pool: asyncpg.Pool) -> IdempotencyStore:
    return IdempotencyStore(pool, TTL_HOURS, LOCK_SECONDS)


def merchant() -> Principal:
    return Principal(uuid.uuid4(), "test")


async def refusal(store: IdempotencyStore, who: Principal, key: str, digest: str) -> str:
    with pytest.raises(ApiError) as refused:
        await store.claim(who, key, digest)
    assert refused.value.status == 409 and refused.value.kind == "idempotency_error"
    return refused.value.code


async def record(pool: asyncpg.Pool, who: Principal, key: str) -> asyncpg.Record:
    row = await pool.fetchrow(
        "SELECT request_digest, state, response_status, response_body,"
        " created_at > now() - interval '1 minute' AS fresh,"
        " locked_at > now() - interval '1 minute' AS fresh_lock"
        " FROM idempotency_record WHERE merchant_id = $1 AND environment = $2 AND key = $3",
        who.merchant_id,
        who.environment,
        key,
    )
    assert row is not None
    return row


async def test_a_key_is_claimed_once_then_its_answer_replayed(store: IdempotencyStore) -> None:
    who, key = merchant(), str(uuid.uuid4())
    assert await store.claim(who, key, "digest-a") is None
    assert await refusal(store, who, key, "digest-a") == "idempotency_key_in_use"
    await store.complete(who, key, 201, b'{"id": "p1"}')
    assert await store.claim(who, key, "digest-a") == Replay(201, b'{"id": "p1"}')
    assert await refusal(store, who, key, "digest-b") == "idempotency_key_reused"


async def test_a_key_is_per_merchant_and_environment(store: IdempotencyStore) -> None:
    who, key = merchant(), str(uuid.uuid4())
    assert await store.claim(who, key, "digest-a") is None
    assert await store.claim(Principal(who.merchant_id, "live"), key, "digest-a") is None
    assert await store.claim(merchant(), key, "digest-a") is None


async def test_a_released_key_is_claimed_again(store: IdempotencyStore) -> None:
    who, key = merchant(), str(uuid.uuid4())
    assert await store.claim(who, key, "digest-a") is None
    await store.release(who, key)
    assert await store.claim(who, key, "digest-b") is None


async def test_an_expired_record_is_taken_over_by_a_new_request(
    store: IdempotencyStore, pool: asyncpg.Pool
) -> None:
    who, key = merchant(), str(uuid.uuid4())
    assert await store.claim(who, key, "digest-a") is None
    await store.complete(who, key, 201, b'{"id": "p1"}')
    await pool.execute(
        "UPDATE idempotency_record SET created_at = now() - make_interval(hours => $2),"
        " locked_at = created_at WHERE key = $1",
        key,
        TTL_HOURS + 1,
    )
    assert await store.claim(who, key, "digest-b") is None
    taken = await record(pool, who, key)
    assert taken["request_digest"] == "digest-b" and taken["state"] == "in_flight"
    assert taken["response_status"] is None and taken["response_body"] is None
    assert taken["fresh"] and taken["fresh_lock"]
    assert await refusal(store, who, key, "digest-b") == "idempotency_key_in_use"


async def test_a_record_within_its_ttl_is_replayed_not_taken_over(
    store: IdempotencyStore, pool: asyncpg.Pool
) -> None:
    who, key = merchant(), str(uuid.uuid4())
    assert await store.claim(who, key, "digest-a") is None
    await store.complete(who, key, 201, b"{}")
    await pool.execute(
        "UPDATE idempotency_record SET created_at = now() - make_interval(hours => $2),"
        " locked_at = created_at WHERE key = $1",
        key,
        TTL_HOURS - 1,
    )
    assert await store.claim(who, key, "digest-a") == Replay(201, b"{}")


async def test_an_abandoned_claim_is_taken_over_after_the_lock(
    store: IdempotencyStore, pool: asyncpg.Pool
) -> None:
    who, key = merchant(), str(uuid.uuid4())
    assert await store.claim(who, key, "digest-a") is None
    await pool.execute(
        "UPDATE idempotency_record SET locked_at = now() - make_interval(secs => $2)"
        " WHERE key = $1",
        key,
        float(LOCK_SECONDS - 5),
    )
    assert await refusal(store, who, key, "digest-a") == "idempotency_key_in_use"
    await pool.execute(
        "UPDATE idempotency_record SET locked_at = now() - make_interval(secs => $2)"
        " WHERE key = $1",
        key,
        float(LOCK_SECONDS + 1),
    )
    assert await store.claim(who, key, "digest-a") is None
    taken = await record(pool, who, key)
    assert taken["state"] == "in_flight" and taken["fresh_lock"]
    assert await refusal(store, who, key, "digest-a") == "idempotency_key_in_use"


async def test_a_finished_record_is_never_taken_over_as_abandoned(
    store: IdempotencyStore, pool: asyncpg.Pool
) -> None:
    who, key = merchant(), str(uuid.uuid4())
    assert await store.claim(who, key, "digest-a") is None
    await store.complete(who, key, 422, b'{"error": {}}')
    await pool.execute(
        "UPDATE idempotency_record SET locked_at = now() - interval '1 hour' WHERE key = $1", key
    )
    assert await store.claim(who, key, "digest-a") == Replay(422, b'{"error": {}}')


@pytest.mark.parametrize("stale", ["fresh", "expired", "abandoned"])
async def test_of_concurrent_claims_exactly_one_wins(
    store: IdempotencyStore, pool: asyncpg.Pool, stale: str
) -> None:
    who, key = merchant(), str(uuid.uuid4())
    if stale != "fresh":
        assert await store.claim(who, key, "digest-old") is None
        age = "25 hours" if stale == "expired" else "1 minute"
        await pool.execute(
            f"UPDATE idempotency_record SET created_at = now() - interval '{age}',"
            f" locked_at = now() - interval '{age}' WHERE key = $1",
            key,
        )

    async def attempt() -> str:
        try:
            return "claimed" if await store.claim(who, key, "digest-a") is None else "replay"
        except ApiError as exc:
            return exc.code

    outcomes = await asyncio.gather(*(attempt() for _ in range(10)))
    assert outcomes.count("claimed") == 1, outcomes
    assert set(outcomes) == {"claimed", "idempotency_key_in_use"}
