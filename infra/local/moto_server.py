"""moto_server, as `.venv/bin/moto_server` runs it, with fixes that keep SQS usable with deep
queues (a broadcast puts 10,000 send requests on the send queue at once) and take some cost
off every request. Each keeps moto's behaviour and only changes its cost; they apply to the
pinned moto only (see infra/requirements.txt) and are left out, with a warning, for any other
version.

1. `unix_time()` / `unix_time_millis()` without an argument: `time.time()`, instead of building
   two datetimes per call (SQS calls them twice per queued message on every receive).
2. A received message's retention check reads the queue's `MessageRetentionPeriod` instead of
   computing every attribute of the queue (three passes over all its messages) per message
   handed out: receives were quadratic in the queue's depth.
3. Deleting a message looks for its receipt handle among the messages in flight first (where a
   receipt handle that can be deleted almost always is) before scanning the whole queue twice.
4. The list of moto's service modules (a directory listing and a `stat` per entry, read twice
   per request to find the backend) is read once.

Usage: python infra/local/moto_server.py [moto_server arguments]
"""

import re
import sys
import time

PINNED = "5.2.5"


def _patch():
    import moto
    import moto.backends as backends
    import moto.core.utils as utils
    import moto.sqs.models as sqs

    if moto.__version__ != PINNED:
        print(
            f"moto {moto.__version__} is not the pinned {PINNED}: running it without the SQS fixes",
            file=sys.stderr,
        )
        return

    unix_time = utils.unix_time

    def fast_unix_time(dt=None):
        return time.time() if dt is None else unix_time(dt)

    def fast_unix_time_millis(dt=None):
        return time.time() * 1000.0 if dt is None else unix_time(dt) * 1000.0

    for module in (utils, sqs):
        module.unix_time = fast_unix_time
        module.unix_time_millis = fast_unix_time_millis

    def retained(self, queue_name, message):
        queue = self.get_queue(queue_name)
        return int(queue.message_retention_period) + message.sent_timestamp / 1000 > time.time()

    sqs.SQSBackend.is_message_valid_based_on_retention_period = retained

    delete_message = sqs.Queue.delete_message

    def delete_in_flight_first(self, receipt_handle):
        if receipt_handle in self.deleted_messages:
            return
        found = next((m for m in self._pending_messages if m.had_receipt_handle(receipt_handle)), None)
        if found is None:
            return delete_message(self, receipt_handle)
        self._pending_messages.discard(found)
        self.deleted_messages.update(found.all_receipt_handles)
        self._messages = [m for m in self._messages if m is not found]

    sqs.Queue.delete_message = delete_in_flight_first

    modules = tuple(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: modules


if __name__ == "__main__":
    _patch()
    from moto.server import main

    sys.argv[0] = re.sub(r"(-script\.pyw|\.exe)?$", "", sys.argv[0])
    sys.exit(main())
