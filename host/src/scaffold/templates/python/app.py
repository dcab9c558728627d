"""{{name}}: one saga step, `{{step}}`, that reserves `qty` units of `item` from a stock kept
in the plugin's kv. Compensation puts them back."""

from rte_step import Step, StepContext, StepError, export, kv, log


class Reserve(Step):
    name = "{{step}}"
    description = "reserve qty units of item"
    # Retried at most 5 times, 200 ms apart at first; a call may take 2 s.
    policy = {"max_retries": 5, "retry_interval_ms": 200, "timeout_ms": 2000}

    def execute(self, ctx: StepContext) -> None:
        item = ctx.input_as("item")
        qty = ctx.input_as("qty", default=1)
        stock_key = f"stock/{item}"
        # A new item starts with the input's `stock` (default 10).
        stock = kv.get_json(stock_key)
        if stock is None:
            stock = ctx.input_as("stock", default=10)
        if qty > stock:
            raise StepError.permanent(f"only {stock} {item} left")
        kv.set_json(stock_key, stock - qty)
        # What compensation must undo, written atomically with the step's result.
        kv.set_json(f"reserved/{ctx.tx_id}", qty)
        log.info(f"reserved {qty} {item}, {stock - qty} left")
        ctx.set_output("reserved", qty)
        ctx.set_output("remaining", stock - qty)

    def compensate(self, ctx: StepContext) -> None:
        marker = f"reserved/{ctx.tx_id}"
        qty = kv.get_json(marker)
        if qty is None:  # execute never took effect, or this already ran
            return
        stock_key = f"stock/{ctx.input_as('item')}"
        kv.set_json(stock_key, (kv.get_json(stock_key) or 0) + qty)
        kv.delete(marker)

    def idempotency_key(self, ctx: StepContext) -> str:
        return f"{{step}}:{ctx.tx_id}"


# componentize-py exports the class named `Step` in this module.
Step = export(Reserve())  # noqa: F811
