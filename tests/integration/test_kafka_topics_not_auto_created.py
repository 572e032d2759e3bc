"""A client the services make never creates a topic by asking about it: topics are made
on purpose (ensure_topics, or KafkaTopic resources in production), with the partitions
the contract names, not the broker's default."""

import asyncio

import pytest
from aiokafka.errors import KafkaError

from services.common.kafka import ensure_topics, new_producer, new_reader

pytestmark = pytest.mark.integration


async def test_asking_for_an_unknown_topic_does_not_create_it(broker):
    await ensure_topics(broker.bootstrap, ["e112.reports"], 3)
    producer = new_producer(broker.bootstrap, "e112-test")
    await producer.start()
    try:
        with pytest.raises((KafkaError, TimeoutError)):
            await asyncio.wait_for(producer.partitions_for("e112.never-made"), 3)
    finally:
        await producer.stop()
    reader = new_reader(broker.bootstrap, "e112-test-reader")
    await reader.start()
    try:
        known = await reader.topics()
    finally:
        await reader.stop()
    assert "e112.reports" in known
    assert "e112.never-made" not in known
