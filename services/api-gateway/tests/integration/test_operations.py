"""`fluxpay-admin dlq list | dlq redrive | backlog` against a real RabbitMQ: a dead letter
is listed (and stays), re-driven to the exchange and key it was first published to, and
the queue depths say where it is."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aio_pika
import pytest
from faststream.rabbit import RabbitBroker
from fluxpay_testing.infra import Infra, isolated_infra

from fluxpay_common.messages import SubmitOtp
from fluxpay_common.topology import COMMANDS, connector_key, declare_topology

BIN = Path(sys.executable).parent
QUEUE = connector_key("sandbox")


@pytest.fixture
def infra() -> Iterator[Infra]:
    """A vhost of each test's own: the whole topology is declared in it."""
    with isolated_infra() as own:
        yield own


def _admin(infra: Infra, *args: str) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLUXPAY_")}
    env |= {"DATABASE_URL": infra.database_url, "RABBITMQ_URL": infra.rabbitmq_url}
    done = subprocess.run(
        [str(BIN / "fluxpay-admin"), *args], env=env, capture_output=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    return json.loads(done.stdout)


@pytest.fixture
async def dead_letter(infra: Infra) -> AsyncIterator[SubmitOtp]:
    """A command published to its exchange and rejected by its consumer: dead-lettered."""
    broker = RabbitBroker(infra.rabbitmq_url, logger=None)
    await broker.connect()
    await declare_topology(broker, delivery_limit=5)
    await broker.stop()
    command = SubmitOtp(
        payment_id=uuid.uuid4(),
        merchant_id=uuid.uuid4(),
        environment="test",
        provider="sandbox",
        otp="123456",
    )
    async with await aio_pika.connect(infra.rabbitmq_url) as connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(COMMANDS.name, ensure=False)
        await exchange.publish(
            aio_pika.Message(
                command.to_bytes(),
                message_id=str(command.message_id),
                headers={"x-message-type": command.type},
            ),
            routing_key=QUEUE,
        )
        queue = await channel.get_queue(QUEUE, ensure=False)
        taken = await queue.get(no_ack=False, timeout=5)
        assert taken is not None
        await taken.reject(requeue=False)
    yield command


async def test_a_dead_letter_is_listed_redacted_and_stays(infra: Infra, dead_letter) -> None:
    for _ in range(2):  # listing does not consume
        listed = _admin(infra, "dlq", "list", "--queue", QUEUE)
        assert listed["count"] == 1
        letter = listed["dead_letters"][0]  # type: ignore[index]
        assert letter["message_id"] == str(dead_letter.message_id)
        assert letter["exchange"] == COMMANDS.name and letter["routing_key"] == QUEUE
        assert letter["type"] == "provider.submit_otp"
        assert letter["body"]["otp"] == "[redacted]"
    backlog = _admin(infra, "backlog")
    assert backlog["queues"][QUEUE]["dlq"]["messages"] == 1  # type: ignore[index]


async def test_redrive_publishes_to_the_original_queue_and_empties_the_dlq(
    infra: Infra, dead_letter
) -> None:
    redriven = _admin(infra, "dlq", "redrive", "--queue", QUEUE)
    assert redriven["redriven"] == [str(dead_letter.message_id)]
    backlog = _admin(infra, "backlog")
    assert backlog["queues"][QUEUE]["dlq"]["messages"] == 0  # type: ignore[index]
    assert backlog["queues"][QUEUE]["queue"]["messages"] == 1  # type: ignore[index]
    async with await aio_pika.connect(infra.rabbitmq_url) as connection:
        channel = await connection.channel()
        queue = await channel.get_queue(QUEUE, ensure=False)
        again = await queue.get(no_ack=True, timeout=5)
        assert again is not None and again.message_id == str(dead_letter.message_id)
        assert SubmitOtp.model_validate_json(again.body).otp == "123456"


def test_an_unknown_queue_is_refused_with_its_name(infra: Infra) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLUXPAY_")}
    env["RABBITMQ_URL"] = infra.rabbitmq_url
    done = subprocess.run(
        [str(BIN / "fluxpay-admin"), "dlq", "list", "--queue", "nope"],
        env=env, capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode != 0 and b"unknown queue 'nope'" in done.stderr


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["inspect", " "], b"argument lookup"),
        (["inspect", "x" * 201], b"argument lookup"),
        (["inspect", "pay", "--timeout", "0"], b"must be positive"),
        (["dlq", "list", "--limit", "-1"], b"must be positive"),
        (["dlq", "redrive", "--queue", "orchestrator.commands", "--limit", "x"], b"not a number"),
    ],
)
def test_bad_arguments_are_refused_with_what_is_wrong(args: list[str], said: bytes) -> None:
    done = subprocess.run(
        [str(BIN / "fluxpay-admin"), *args], capture_output=True, timeout=60, check=False
    )
    assert done.returncode == 2 and said in done.stderr, done.stderr


def test_inspect_with_the_broker_unreachable_says_so(infra: Infra) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLUXPAY_")}
    env["RABBITMQ_URL"] = "amqp://guest:guest@127.0.0.1:1/"
    done = subprocess.run(
        [str(BIN / "fluxpay-admin"), "inspect", "order-1", "--timeout", "2"],
        env=env, capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "broker unavailable" in json.loads(done.stdout)["error"]
