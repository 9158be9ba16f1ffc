"""A generation worker process whose studio engine pauses after each image, so a test can kill it
(``kill -9``) in the middle of a render. Everything else is the real worker: the consumer, the
handlers, the outbox relay, settings from the environment.

    SLOW_SECONDS=0.5 BROKER_URL=amqp://... DATABASE_URL=postgresql+psycopg://... \\
        python -m tests.support.slow_worker
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from typing import Any

from libs.db import Database
from libs.messaging import Bus
from libs.settings import Settings
from libs.storage import make_blob_store
from libs.web import configure_logging
from services.generation.engines import RenderedHeadshot
from services.generation.engines.studio import StudioEngine
from services.generation.handlers import HANDLERS
from services.generation.job import Generation


class SlowStudio(StudioEngine):
    def __init__(self, settings: Settings, pause: float) -> None:
        super().__init__(settings)
        self.pause = pause

    def render(self, *args: Any, **kwargs: Any) -> Iterator[RenderedHeadshot]:
        for headshot in super().render(*args, **kwargs):
            yield headshot
            time.sleep(self.pause)


def main() -> None:
    settings = Settings.from_env()
    configure_logging(settings)
    db = Database(settings.database_url)
    bus = Bus(settings, db)
    bus.declare()
    stop = threading.Event()
    threading.Thread(target=bus.relay().run_forever, args=(stop,), daemon=True).start()
    engine = SlowStudio(settings, float(os.environ.get("SLOW_SECONDS", "0.5")))
    generation = Generation.build(settings, db, make_blob_store(settings), engine=engine)
    consumer = bus.consumer("generation", HANDLERS, {"generation": generation})
    print("worker ready", flush=True)
    consumer.run()
    stop.set()


if __name__ == "__main__":
    main()
