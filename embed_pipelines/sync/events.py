"""Change events from a source, as live mode hears them: inotify (through watchdog) for a local folder, and S3
event notifications delivered to an SQS queue for a bucket.

An event only says where to look. The live worker scans the shards events name with the scan a sync runs, so
an event missed, doubled or out of order costs a look, never a wrong row; and because inotify drops events
without a word when its queue overflows, the worker also looks at every shard now and then (the safety net).
`EVERYTHING` is heard when an event cannot be tied to files: a folder created, moved or deleted, a queue
message that is not an object event."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote_plus

from watchdog.events import FileSystemEventHandler
from watchdog.observers import Observer

from embed_pipelines.core.sources import ObjectPrefix

EVERYTHING = None  # heard instead of paths: look at every shard
Heard = Callable[[list[str] | None], None]  # relative paths that may have changed, or EVERYTHING

_log = logging.getLogger(__name__)


class FolderEvents:
    """inotify events under a local folder, reported as paths relative to it (watchdog's observer thread)."""

    def __init__(self, root: Path, heard: Heard):
        self.root, self.heard = root.resolve(), heard
        self.observer = Observer()
        self.observer.schedule(_Handler(self), str(self.root), recursive=True)

    def start(self) -> None:
        self.observer.start()  # raises OSError when inotify cannot watch (max_user_watches): said by the worker

    def stop(self) -> None:
        self.observer.stop()
        self.observer.join()

    def relative(self, path: str | bytes) -> str | None:
        try:
            return Path(path if isinstance(path, str) else path.decode()).relative_to(self.root).as_posix()
        except (ValueError, UnicodeDecodeError):
            return None


class _Handler(FileSystemEventHandler):
    # Only these say a file's bytes or name may have changed; opened and closed-without-writing do not.
    CHANGES = frozenset({"created", "modified", "deleted", "moved", "closed"})

    def __init__(self, events: FolderEvents):
        self.events = events

    def on_any_event(self, event) -> None:
        if event.event_type not in self.CHANGES:
            return
        if event.is_directory:
            if event.event_type != "modified":  # files appeared or went with the folder, unannounced
                self.events.heard(EVERYTHING)
            return
        paths = [event.src_path, event.dest_path] if event.event_type == "moved" else [event.src_path]
        relative = [path for path in map(self.events.relative, paths) if path is not None]
        if relative:
            self.events.heard(relative)


class QueueEvents:
    """S3 event notifications for the objects of `source`, received from an SQS queue by long polling in a thread
    of its own. A message is deleted once its paths are handed over: the worker looks at every shard when it
    starts, so a message taken by a worker that died before applying it costs nothing."""

    WAIT_S = 1  # long polling: an event arrives within this (or at once), without a request a second

    def __init__(self, source: ObjectPrefix, queue_url: str, heard: Heard):
        import boto3  # reads the standard AWS environment (AWS_ENDPOINT_URL, region, keys)

        self.queue_url, self.heard = queue_url, heard
        self.bucket, self.prefix = source.bucket, source.key_prefix
        self.client = boto3.client("sqs")
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._receive, name="embed-pipelines-queue-events", daemon=True)

    def start(self) -> None:
        self.client.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])  # fails here, named
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join()

    def _receive(self) -> None:
        while not self.stopping.is_set():
            try:
                self._take_messages()
            except Exception as error:  # the queue is back or not: the safety net looks at every shard meanwhile
                _log.warning(f"Cannot receive from the events queue: {error}")
                self.stopping.wait(5)

    def _take_messages(self) -> None:
        answer = self.client.receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=self.WAIT_S
        )
        messages = answer.get("Messages", [])
        for message in messages:
            self.heard(self.paths_in(message["Body"]))
        if messages:
            entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
            self.client.delete_message_batch(QueueUrl=self.queue_url, Entries=entries)

    def paths_in(self, body: str) -> list[str] | None:
        """The source's relative paths an S3 notification names (keys arrive URL-encoded, spaces as `+`); an
        `s3:TestEvent` names none; a message that is not an S3 notification means: look everywhere."""
        try:
            notification = json.loads(body)
        except ValueError:
            return EVERYTHING
        if not isinstance(notification, dict):
            return EVERYTHING
        if notification.get("Event") == "s3:TestEvent":
            return []
        records = notification.get("Records")
        if not isinstance(records, list) or not all(isinstance(record, dict) for record in records):
            return EVERYTHING
        paths = []
        for record in records:
            s3 = record.get("s3") or {}
            key = unquote_plus(str((s3.get("object") or {}).get("key", "")))
            if (s3.get("bucket") or {}).get("name") == self.bucket and key.startswith(self.prefix):
                paths.append(key[len(self.prefix) :])
        return paths
