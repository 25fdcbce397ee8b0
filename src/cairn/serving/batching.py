"""Adaptive micro-batching: concurrent requests to one model answered by one ``predict``.

A vectorised model (a scikit-learn forest, a neural network) costs about as much for 32
rows as for one, so under load the server gathers the rows of concurrent requests, calls
``predict`` once and hands each request its own slice of the output.

When a batch goes (per group, see below):

* at once when the group has nothing in flight: at low load a request is never held back,
  so its latency is what it would be without batching;
* while a batch is in flight, arriving requests are gathered; they go when that batch is
  back, or when ``max_batch`` rows are gathered or the oldest has waited ``max_wait_ms``
  (then in parallel with the one in flight, up to ``max_in_flight`` batches): at high load
  batches fill by themselves, with no fixed delay to tune.

Requests are batched only with requests for the same :class:`~.holder.Served` object (a
version switch never mixes versions in one batch) and of the same shape: data frames with
the same column names and dtypes, arrays with the same dtype and trailing dimensions.
Dicts of arrays, empty inputs and requests over ``max_batch`` rows go alone.

The answers are what ``served.predict`` would have returned for each request alone: the
output is split along its first axis only when it has one entry per input row (numpy
arrays, lists, tuples, torch tensors; pandas objects whose index is the batch's row
positions); otherwise, or when the batched ``predict`` raises, every request of that batch
is predicted on its own, so one bad request's exception reaches that request only.
Batching assumes a row-wise model (each output row depends on its input row alone):
serve a model that normalises across rows without it.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable

log = logging.getLogger("cairn.serving")

OnBatch = Callable[[Any, int], None]


@dataclass(eq=False, slots=True)
class _Request:
    inputs: Any
    rows: int
    future: asyncio.Future[Any]
    arrived: float  # loop time


@dataclass(eq=False, slots=True)
class _Group:
    """The requests waiting for one served model and one input shape."""

    served: Any  # held so that id(served) in the group's key cannot be reused meanwhile
    pending: deque[_Request] = field(default_factory=deque)
    rows: int = 0           # rows pending (cancelled requests included until taken)
    in_flight: int = 0      # batches running in worker threads
    timer: asyncio.TimerHandle | None = None


class MicroBatcher:
    """``await batcher.predict(served, inputs)``: ``served.predict(inputs)``, batched.

    ``max_batch``: most rows in one ``predict``; ``max_wait_ms``: longest a request waits
    for its batch to fill while another batch is in flight; ``max_in_flight``: most batches
    of one group running at once; ``on_batch(served, rows)`` is called on the event loop
    for every ``predict`` the batcher makes (for metrics; it must not block).

    Use from one event loop; the model runs in worker threads (``asyncio.to_thread``),
    as it would without batching.
    """

    status_name = "batching"  # where GET /v1/status shows stats()

    def __init__(self, max_batch: int = 64, max_wait_ms: float = 2.0, *,
                 max_in_flight: int = 2, on_batch: OnBatch | None = None) -> None:
        if not isinstance(max_batch, int) or isinstance(max_batch, bool) or max_batch < 1:
            raise ValueError(f"max_batch must be a whole number of rows >= 1, not {max_batch!r}")
        if not max_wait_ms >= 0:  # also refuses NaN
            raise ValueError(f"max_wait_ms must be >= 0 milliseconds, not {max_wait_ms!r}")
        if not isinstance(max_in_flight, int) or max_in_flight < 1:
            raise ValueError(f"max_in_flight must be a whole number >= 1, not {max_in_flight!r}")
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000.0
        self.max_in_flight = max_in_flight
        self.on_batch = on_batch
        self._groups: dict[tuple[int, Hashable], _Group] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        # Counters for stats(): predicts made on gathered batches and alone.
        self._batches = 0
        self._batched_rows = 0
        self._batched_requests = 0
        self._largest = 0
        self._direct = 0
        self._fallbacks = 0

    # -- the request path -------------------------------------------------------------

    async def predict(self, served: Any, inputs: Any, key: Hashable | None = None) -> Any:
        """What ``served.predict(inputs)`` returns (or raises), predicted with the rows of
        other requests for the same model and input shape when they arrive together.

        ``key``: the caller's own shape key, when it knows every input of ``served`` has the
        same shape (frames fitted to a data frame signature), saving :func:`shape_key`."""
        if self._closed:
            raise RuntimeError("the micro-batcher is closed (the server is shutting down)")
        if key is None:
            key = shape_key(inputs)
        rows = _rows(inputs) if key is not None else 0
        if key is None or rows == 0 or rows > self.max_batch:
            # Not batchable (a dict of arrays, an empty input) or a batch on its own.
            self._direct += 1
            if rows:
                self._report(served, rows)
            return await asyncio.to_thread(served.predict, inputs)
        loop = asyncio.get_running_loop()
        gkey = (id(served), key)
        group = self._groups.get(gkey)
        if group is None:
            group = self._groups[gkey] = _Group(served)
        request = _Request(inputs, rows, loop.create_future(), loop.time())
        group.pending.append(request)
        group.rows += rows
        self._pump(gkey, group)
        return await request.future

    def _pump(self, gkey: tuple[int, Hashable], group: _Group) -> None:
        """Send what may go now; set a timer for when the oldest waiting request is due."""
        loop = asyncio.get_running_loop()
        while group.pending:
            idle = group.in_flight == 0
            due = loop.time() >= group.pending[0].arrived + self.max_wait
            if not (idle or self._closed or
                    (group.in_flight < self.max_in_flight and
                     (group.rows >= self.max_batch or due))):
                break
            batch = self._take(group)
            if not batch:
                continue
            group.in_flight += 1
            task = loop.create_task(self._run(gkey, group, batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        if group.timer is not None:
            group.timer.cancel()
            group.timer = None
        if group.pending and group.in_flight < self.max_in_flight:
            group.timer = loop.call_at(group.pending[0].arrived + self.max_wait,
                                       self._pump, gkey, group)
        elif not group.pending and group.in_flight == 0:
            # Forget the group: the old version it holds can be freed after a switch.
            if self._groups.get(gkey) is group:
                del self._groups[gkey]

    def _take(self, group: _Group) -> list[_Request]:
        """The oldest pending requests, up to ``max_batch`` rows (at least one request)."""
        batch: list[_Request] = []
        size = 0
        while group.pending:
            request = group.pending[0]
            if request.future.done():  # its caller went away
                group.pending.popleft()
                group.rows -= request.rows
                continue
            if batch and size + request.rows > self.max_batch:
                break
            group.pending.popleft()
            group.rows -= request.rows
            batch.append(request)
            size += request.rows
        return batch

    async def _run(self, gkey: tuple[int, Hashable], group: _Group,
                   batch: list[_Request]) -> None:
        size = sum(r.rows for r in batch)
        self._batches += 1
        self._batched_rows += size
        self._batched_requests += len(batch)
        self._largest = max(self._largest, size)
        self._report(group.served, size)
        try:
            outcomes, fell_back = await asyncio.to_thread(_predict_batch, group.served.predict,
                                                          [r.inputs for r in batch])
        except asyncio.CancelledError:  # close() or the loop going away: callers hear it
            for request in batch:
                if not request.future.done():
                    request.future.cancel()
            raise
        except Exception as exc:  # noqa: BLE001 (a bug of ours: every caller hears it)
            log.exception("the micro-batcher failed on a batch of %d requests", len(batch))
            outcomes, fell_back = [_Failed(exc)] * len(batch), False
        finally:
            group.in_flight -= 1
            self._pump(gkey, group)
        self._fallbacks += fell_back
        for request, outcome in zip(batch, outcomes):
            if request.future.done():
                continue
            if isinstance(outcome, _Failed):
                request.future.set_exception(outcome.exc)
            else:
                request.future.set_result(outcome)

    def _report(self, served: Any, size: int) -> None:
        if self.on_batch is None:
            return
        try:
            self.on_batch(served, size)
        except Exception:  # noqa: BLE001 (metrics never fail a request)
            log.exception("the micro-batcher's on_batch callback failed")

    # -- reporting and shutdown -------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Counts since start: ``batches`` (predicts on gathered requests), ``rows`` and
        ``requests`` in them, ``mean_batch_size`` (rows per batch), ``largest_batch``,
        ``direct`` (requests predicted alone: dicts, empty or over ``max_batch``),
        ``fallbacks`` (batches re-predicted request by request), ``pending``."""
        return {"max_batch": self.max_batch, "max_wait_ms": self.max_wait * 1000.0,
                "batches": self._batches, "rows": self._batched_rows,
                "requests": self._batched_requests,
                "mean_batch_size": round(self._batched_rows / self._batches, 3)
                if self._batches else 0.0,
                "largest_batch": self._largest, "direct": self._direct,
                "fallbacks": self._fallbacks,
                "pending": sum(len(g.pending) for g in self._groups.values())}

    async def close(self, *, drain: bool = True) -> None:
        """Stop taking requests; with ``drain`` send what is waiting at once and wait for
        every batch, else cancel the requests not yet sent (those in flight finish)."""
        self._closed = True
        for gkey, group in list(self._groups.items()):
            if not drain:
                for request in group.pending:
                    request.future.cancel()
                group.pending.clear()
                group.rows = 0
            self._pump(gkey, group)
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


class _Failed:
    """An exception ``predict`` raised for one request (kept apart from a returned value)."""

    __slots__ = ("exc",)

    def __init__(self, exc: Exception) -> None:
        self.exc = exc


def _predict_batch(predict: Callable[[Any], Any], inputs: list[Any]) -> tuple[list[Any], bool]:
    """Each input's output (or :class:`_Failed`) and whether the batch fell back to one
    predict per input; runs in a worker thread."""
    if len(inputs) == 1:
        return [_call(predict, inputs[0])], False
    parts = None
    try:
        out = predict(_concat(inputs))
    except Exception as exc:  # noqa: BLE001 (find whose rows it was: predict each alone)
        log.debug("a batch of %d requests failed (%s); predicting each alone", len(inputs), exc)
    else:
        try:
            parts = _split(out, inputs)
        except Exception:  # noqa: BLE001 (an output that slices oddly: predict each alone)
            log.debug("splitting a batch's output failed", exc_info=True)
        if parts is None:
            log.debug("a batch's output (%s) cannot be split by request; predicting each "
                      "alone", type(out).__name__)
    if parts is not None:
        return parts, False
    return [_call(predict, one) for one in inputs], True


def _call(predict: Callable[[Any], Any], inputs: Any) -> Any:
    try:
        return predict(inputs)
    except Exception as exc:  # noqa: BLE001 (handed to the request's own caller)
        return _Failed(exc)


# -- shapes, joining and splitting ------------------------------------------------------

def _pandas() -> Any:
    # Only ever needed when a data frame was given, so never imported here for nothing.
    return sys.modules.get("pandas")


def _numpy() -> Any:
    return sys.modules.get("numpy")


def shape_key(inputs: Any) -> Hashable | None:
    """What requests must share to be predicted together, or None when ``inputs`` is not
    batched: a data frame's column names and dtypes, an array's dtype and trailing shape."""
    pd, np = _pandas(), _numpy()
    if pd is not None and isinstance(inputs, pd.DataFrame):
        try:
            key = ("frame", tuple(inputs.columns), tuple(inputs.dtypes))
            hash(key)
        except TypeError:  # an unhashable column name or dtype: not worth batching
            return None
        return key
    if np is not None and isinstance(inputs, np.ndarray) and inputs.ndim >= 1:
        return ("array", inputs.dtype, inputs.shape[1:])
    return None


def _rows(inputs: Any) -> int:
    return int(inputs.shape[0])


def _concat(inputs: list[Any]) -> Any:
    pd = _pandas()
    if pd is not None and isinstance(inputs[0], pd.DataFrame):
        # The model sees rows 0..N-1, whatever the requests' own indexes.
        return pd.concat(inputs, ignore_index=True)
    np = _numpy()
    return np.concatenate(inputs, axis=0)


def _split(out: Any, inputs: list[Any]) -> list[Any] | None:
    """``out`` cut into one part per input by row count, or None when that cannot be done
    exactly (not one entry per row, a type with no first axis, an index of its own)."""
    sizes = [_rows(one) for one in inputs]
    total = sum(sizes)
    try:
        length = len(out)
    except TypeError:  # a scalar, an object with no length
        return None
    if length != total or isinstance(out, (str, bytes, dict)):
        return None
    pd = _pandas()
    if pd is not None and isinstance(out, (pd.Series, pd.DataFrame)):
        return _split_pandas(pd, out, inputs, sizes)
    np = _numpy()
    splittable = isinstance(out, (list, tuple)) or \
        (np is not None and isinstance(out, np.ndarray) and out.ndim >= 1) or \
        _is_tensor(out)
    if not splittable:
        return None
    parts, start = [], 0
    for size in sizes:
        parts.append(out[start:start + size])
        start += size
    return parts


def _split_pandas(pd: Any, out: Any, inputs: list[Any], sizes: list[int]) -> list[Any] | None:
    # The model saw rows 0..N-1; an output indexed that way maps back to each request's
    # rows, and alone it would have been indexed 0..n-1 (a model that keeps its input's
    # index and one that builds a fresh one agree) when the request's own index was
    # 0..n-1.  Any other index (the model's own, or a request indexed otherwise): unknown.
    if not _is_default_index(pd, out.index, len(out)):
        return None
    if not all(_is_default_index(pd, one.index, len(one)) if isinstance(one, pd.DataFrame)
               else True for one in inputs):
        return None
    parts, start = [], 0
    for size in sizes:
        parts.append(out.iloc[start:start + size].set_axis(pd.RangeIndex(size), axis=0))
        start += size
    return parts


def _is_default_index(pd: Any, index: Any, length: int) -> bool:
    return isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1 and \
        len(index) == length


def _is_tensor(value: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)
