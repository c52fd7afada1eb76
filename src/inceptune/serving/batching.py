"""MicroBatcher: the images of concurrent requests gathered into batches for one model thread."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from inceptune import hooks


class MicroBatcher:
    """Gathers the images of concurrent requests into batches of at most `max_batch` for one model thread.

    A batch starts with the first waiting request and takes whatever else
    arrives within `max_wait` seconds (or is queued while the model is busy).
    """

    def __init__(self, infer, max_batch: int = 16, max_wait: float = 0.005, on_batch=None):
        self.infer, self.max_batch, self.max_wait, self.on_batch = infer, max_batch, max_wait, on_batch
        self.model_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inceptune-model")
        self.queue: asyncio.Queue | None = None
        self.batches = self.images = 0

    async def run(self) -> None:
        self.queue = asyncio.Queue()
        loop = asyncio.get_running_loop()
        while True:
            items = [await self.queue.get()]
            count, deadline = len(items[0][0]), loop.time() + self.max_wait
            while count < self.max_batch:
                try:
                    item = await asyncio.wait_for(self.queue.get(), max(0.0, deadline - loop.time()))
                except TimeoutError:
                    break
                items.append(item)
                count += len(item[0])
            batch = np.concatenate([images for images, _ in items])
            hooks.reached("batch_started", images=len(batch))
            try:
                probs = await loop.run_in_executor(self.model_thread, self.infer, batch)
            except Exception as exc:  # the requests fail, the server stays up
                for _, future in items:
                    future.set_exception(exc)
                continue
            self.batches, self.images = self.batches + 1, self.images + len(batch)
            if self.on_batch is not None:
                self.on_batch(len(batch))
            start = 0
            for images, future in items:
                future.set_result(probs[start:start + len(images)])
                start += len(images)

    async def submit(self, images: np.ndarray) -> np.ndarray:
        future = asyncio.get_running_loop().create_future()
        await self.queue.put((images, future))
        return await future

    async def call(self, fn, *args):
        """Run `fn` on the model thread (models are not shared across threads)."""
        return await asyncio.get_running_loop().run_in_executor(self.model_thread, fn, *args)
