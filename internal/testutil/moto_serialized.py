# moto_server with its SQS calls taken one at a time.
#
# moto's SQS backend changes a queue's message list without a lock while
# its server answers on many threads. Two concurrent deletes each rebuild
# the list from the same start and the second write puts back the message
# the first removed: the message is deleted as far as its receipt handles
# go, yet comes back after its visibility timeout and is received again.
# Two concurrent receives can also both take one visible message. Neither
# is a behaviour of SQS that storaged could handle or that a test of
# storaged should see, and both made the multi-daemon SQS tests fail now
# and then (a job delivered again long after its acknowledge; "processing
# 10" in the stats after a drain). So the tests run moto behind one lock.
#
# A long poll must not hold that lock while it waits: a receive is made
# without waiting, under the lock, and repeated after each send or change
# of visibility (or every 50 ms, for messages whose delay or visibility
# timeout runs out) until it gets messages or its wait is over.
import threading
import time

from moto.server import main
from moto.sqs import models

_changed = threading.Condition(threading.RLock())

_WRITES = (
    "create_queue", "delete_queue", "set_queue_attributes", "purge_queue",
    "send_message", "send_message_batch",
    "delete_message", "delete_message_batch",
    "change_message_visibility", "change_message_visibility_batch",
)
_READS = ("get_queue_url", "list_queues", "get_queue", "get_queue_attributes")


def _serialized(method, notify):
    def call(*args, **kwargs):
        with _changed:
            out = method(*args, **kwargs)
            if notify:
                _changed.notify_all()
            return out
    return call


_backend = models.SQSBackend
for _name in _WRITES:
    setattr(_backend, _name, _serialized(getattr(_backend, _name), True))
for _name in _READS:
    setattr(_backend, _name, _serialized(getattr(_backend, _name), False))

_receive = _backend.receive_message


def _receive_serialized(self, queue_name, count, wait_seconds_timeout, visibility_timeout, message_attribute_names=None):
    end = time.monotonic() + (wait_seconds_timeout or 0)
    with _changed:
        while True:
            got = _receive(self, queue_name, count, 0, visibility_timeout, message_attribute_names)
            left = end - time.monotonic()
            if got or left <= 0:
                return got
            _changed.wait(min(left, 0.05))


_backend.receive_message = _receive_serialized

if __name__ == "__main__":
    main()
