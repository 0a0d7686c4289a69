"""Cluster: two daemons and a worker sharing one Redis channel layer and one MQTT broker.

- **Ingress spread over the daemons, one live instance per sensor.** Both daemons subscribe
  with MQTT 5 shared subscriptions (``$share/cluster/<filter>`` in ``daemon-a.yaml`` and
  ``daemon-b.yaml``), so the broker gives each message to one of them. Their ``cluster:``
  section gives each sensor's scope one owner at a time: a reading that reaches the other
  daemon is forwarded to the owner, and acknowledged once the owner handled it. A
  ``SensorConsumer`` counts its sensor's readings in ``self.state`` (``state:``, in Redis)
  and acknowledges each on ``sensors/{sensor_id}/ack`` with the count and the process id of
  the daemon that handled it. When a daemon dies, its sensors move to the other once its
  lease runs out, their counts loaded from Redis.
- **A group spanning both daemons.** Every ``SensorConsumer`` joins the group ``sensors``. A
  message on ``fleet/broadcast`` reaches one daemon, whose ``BroadcastConsumer`` sends it to
  the group; every sensor's consumer, on either daemon, publishes it to
  ``sensors/{sensor_id}/broadcast``.
- **Background work handed to the worker.** A message on ``jobs/{job_id}`` with
  ``{"numbers": [...]}`` reaches a ``JobConsumer``, which hands the job off with
  ``channel_layer.send("jobs", ...)``. The worker (``worker.yaml``) runs ``JobWorker`` for the
  channel ``jobs``; it sends the result back to the consumer's own channel name, and the
  consumer publishes it to ``jobs/{job_id}/result``.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from consumers import (
    AsyncConsumer,
    ChannelNameRouter,
    MqttConsumer,
    ProtocolTypeRouter,
    TopicRouter,
    route,
)

if TYPE_CHECKING:
    from layer.types import MqttMessageEvent

SENSORS_GROUP = "sensors"
JOBS_CHANNEL = "jobs"


class SensorState(BaseModel):
    """What a sensor's consumer keeps, in the state store, wherever its scope lives."""

    readings: int = 0


class SensorConsumer(MqttConsumer):
    """One instance per sensor, on the daemon that owns its scope (the cluster)."""

    groups = (SENSORS_GROUP,)
    state_model = SensorState
    state_name = "cluster.sensor"

    async def receive(self, message: MqttMessageEvent) -> None:
        sensor_id = self.scope["route"]["kwargs"]["sensor_id"]
        self.state.readings += 1
        ack = {
            "daemon": os.getpid(),
            "reading": message["payload"].decode(),
            "count": self.state.readings,
        }
        await self.publish(f"sensors/{sensor_id}/ack", json.dumps(ack), qos=1)

    async def sensors_broadcast(self, message: dict[str, Any]) -> None:
        sensor_id = self.scope["route"]["kwargs"]["sensor_id"]
        seen = {
            "daemon": os.getpid(),
            "origin": message["origin"],
            "text": message["text"],
        }
        await self.publish(f"sensors/{sensor_id}/broadcast", json.dumps(seen), qos=1)


class BroadcastConsumer(MqttConsumer):
    """Sends what arrives on ``fleet/broadcast`` to every sensor, on every daemon."""

    async def receive(self, message: MqttMessageEvent) -> None:
        await self.channel_layer.group_send(
            SENSORS_GROUP,
            {
                "type": "sensors.broadcast",
                "text": message["payload"].decode(),
                "origin": os.getpid(),
            },
        )


class JobConsumer(MqttConsumer):
    """Hands each job to the worker and publishes the result it sends back."""

    async def receive(self, message: MqttMessageEvent) -> None:
        await self.channel_layer.send(
            JOBS_CHANNEL,
            {
                "type": "job.run",
                "job_id": self.scope["route"]["kwargs"]["job_id"],
                "numbers": json.loads(message["payload"])["numbers"],
                "accepted_by": os.getpid(),
                "reply_to": self.channel_name,
            },
        )

    async def job_done(self, message: dict[str, Any]) -> None:
        result = {key: message[key] for key in ("sum", "accepted_by", "done_by", "worker_pid")}
        await self.publish(f"jobs/{message['job_id']}/result", json.dumps(result), qos=1)


class JobWorker(AsyncConsumer):
    """The worker's consumer of the channel ``jobs``: one instance, every job in turn."""

    async def job_run(self, message: dict[str, Any]) -> None:
        await self.channel_layer.send(
            message["reply_to"],
            {
                "type": "job.done",
                "job_id": message["job_id"],
                "sum": sum(message["numbers"]),
                "accepted_by": message["accepted_by"],
                "done_by": f"{self.scope['gateway']}/{self.scope['channel']}",
                "worker_pid": os.getpid(),
            },
        )


application = ProtocolTypeRouter(
    {
        "mqtt": TopicRouter(
            [
                route("sensors/{sensor_id}/reading", SensorConsumer.as_asgi()),
                route("fleet/broadcast", BroadcastConsumer.as_asgi()),
                route("jobs/{job_id}", JobConsumer.as_asgi()),
            ]
        ),
        "channel": ChannelNameRouter({JOBS_CHANNEL: JobWorker.as_asgi()}),
    }
)
