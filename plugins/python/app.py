"""An RTE step plugin in Python: `py_reserve` holds units of an item in a small inventory.

Stock lives in the plugin's kv store under `stock/{item}`. Each reservation also writes a
marker for its saga and step; compensation gives back only what a marker records, then
deletes it, so it is idempotent and a no-op for an execute that never took effect.
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import kv, log
from wit_world.imports.types import (
    StepContext,
    StepError_Permanent,
    StepError_Retryable,
    StepInfo,
)

STEP = "py_reserve"


def permanent(message: str) -> Err:
    return Err(StepError_Permanent(message))


def kv_call(op, *args):
    """A kv call; a store failure is retryable."""
    try:
        return op(*args)
    except Err as err:
        raise Err(StepError_Retryable(f"kv {op.__name__} {args[0]!r}: {err.value}"))


def get_json(key: str):
    text = kv_call(kv.get, key)
    return None if text is None else json.loads(text)


def set_json(key: str, value) -> None:
    kv_call(kv.set, key, json.dumps(value))


def marker_key(ctx: StepContext) -> str:
    return f"reservation/{ctx.tx_id}/{ctx.step_index}"


def count(value, name: str, minimum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise permanent(f"input `{name}` must be an integer of at least {minimum}")
    return value


class Step(exports.Step):
    def steps(self) -> list[StepInfo]:
        return [
            StepInfo(
                name=STEP,
                version="0.1.0",
                service="inventory",
                supports_compensation=True,
                supports_idempotency=True,
                description="reserve qty units of item (initial stock from input stock)",
            )
        ]

    def execute(self, step: str, ctx: StepContext) -> str:
        if step != STEP:
            raise permanent(f"unknown step `{step}`")
        data = json.loads(ctx.input)
        item = data.get("item")
        if not isinstance(item, str) or not item:
            raise permanent("input `item` must be a non-empty string")
        qty = count(data.get("qty", 1), "qty", 1)
        marker = marker_key(ctx)
        # Already reserved by an earlier attempt of this saga's step: do not reserve twice.
        reservation = get_json(marker)
        if reservation is None:
            key = f"stock/{item}"
            stock = get_json(key)
            if stock is None:
                stock = count(data.get("stock", 0), "stock", 0)
            if stock < qty:
                raise permanent(f"out of stock: {item} has {stock}, asked for {qty}")
            reservation = {
                "id": f"rsv:{ctx.tx_id}:{ctx.step_index}",
                "item": item,
                "qty": qty,
                "remaining": stock - qty,
            }
            set_json(key, stock - qty)
            set_json(marker, reservation)
            log.log(log.Level.INFO, f"reserved {qty} x {item}, {stock - qty} left")
        return json.dumps({"reservation": reservation})

    def compensate(self, step: str, ctx: StepContext) -> None:
        marker = marker_key(ctx)
        reservation = get_json(marker)
        if reservation is None:
            return  # never reserved, or released already
        key = f"stock/{reservation['item']}"
        set_json(key, (get_json(key) or 0) + reservation["qty"])
        kv_call(kv.delete, marker)

    def idempotency_key(self, step: str, ctx: StepContext) -> str | None:
        return f"{STEP}:{ctx.tx_id}:{ctx.step_index}"
