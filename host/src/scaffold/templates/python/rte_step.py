"""Write RTE saga steps in Python with the shape of the Rust SDK.

A step is a subclass of `Step` with a `name` and an `execute(ctx)` (optionally `compensate`,
`confirm` and `idempotency_key`); `export(...)` turns the steps into the component's `step`
export. Inside a step:

- `ctx.input_as(key)`, `ctx.output_as(key)`: a value, or a permanent `StepError` naming the
  missing key (pass `default=` to make it optional); `ctx.set_output(key, value)`.
- `kv.get / get_json / set / set_json / delete`: the plugin's durable store; a store failure
  raises a retryable `StepError`.
- `log.info(...)` and friends, `config.get(key)`.
- `raise StepError.retryable(msg)` or `StepError.permanent(msg)`; any other exception aborts
  the call like a Rust panic.

Outside a component build (in a plain `python3` test run) kv, log and config use an in-memory
stand-in of the host, and `StepTest` calls steps as the host does.
"""

import json
from typing import Any, Callable, Dict, List, Optional

_MISSING = object()

try:  # Inside the component: the bindings componentize-py generates from wit/saga.wit.
    from componentize_py_types import Err as _Err
    from wit_world import exports as _exports
    from wit_world.imports import config as _config
    from wit_world.imports import kv as _kv
    from wit_world.imports import log as _log
    from wit_world.imports import types as _types

    _HOST = True
except ImportError:  # A plain Python run: tests.
    _HOST = False


class StepError(Exception):
    """Why a step call failed: retryable (the host tries again) or permanent (it does not)."""

    def __init__(self, message: str, retryable: bool):
        super().__init__(message)
        self.message = message
        self.is_retryable = retryable

    @staticmethod
    def retryable(message: str) -> "StepError":
        return StepError(message, True)

    @staticmethod
    def permanent(message: str) -> "StepError":
        return StepError(message, False)


class StepContext:
    """One call of a step: the saga's id, its input, earlier outputs, and the outputs set."""

    def __init__(self, tx_id: str, tx_type: str, step_name: str, step_index: int,
                 phase: str, attempt: int, execute_outcome: str,
                 input: Dict[str, Any], outputs: Dict[str, Any]):
        self.tx_id = tx_id
        self.tx_type = tx_type
        self.step_name = step_name
        self.step_index = step_index
        self.phase = phase  # "execute", "compensate" or "confirm"
        self.attempt = attempt
        self.execute_outcome = execute_outcome  # "completed", "unknown" or "not_applicable"
        self.input = input
        self.outputs = outputs
        self.set: Dict[str, Any] = {}

    def input_as(self, key: str, default: Any = _MISSING) -> Any:
        return _lookup("input", key, self.input, default)

    def output_as(self, key: str, default: Any = _MISSING) -> Any:
        merged = dict(self.outputs)
        merged.update(self.set)
        return _lookup("output", key, merged, default)

    def set_output(self, key: str, value: Any) -> None:
        json.dumps(value)  # fails here, not at the end of the call
        self.set[key] = value


def _lookup(what: str, key: str, values: Dict[str, Any], default: Any) -> Any:
    value = values.get(key)
    if value is None:
        if default is _MISSING:
            raise StepError.permanent(f"missing {what} `{key}`")
        return default
    return value


class Step:
    """Subclass it: set `name` (and optionally `service`, `version`, `description`, `policy`), define
    `execute(ctx)`, and `compensate(ctx)` / `confirm(ctx)` / `idempotency_key(ctx)` if the
    step has them."""

    name: str = ""
    version: str = "0.1.0"
    service: str = ""
    description: str = ""
    # How the host should run the step, e.g. {"max_retries": 5, "timeout_ms": 2000}; keys:
    # max_retries, retry_interval_ms, retry_max_interval_ms, timeout_ms, idempotent. The saga
    # definition and the operator may override each one.
    policy: Optional[Dict[str, Any]] = None

    def execute(self, ctx: StepContext) -> None:
        raise NotImplementedError

    def compensate(self, ctx: StepContext) -> None:
        pass

    def confirm(self, ctx: StepContext) -> None:
        pass

    def idempotency_key(self, ctx: StepContext) -> Optional[str]:
        return None


def _overrides(step: Step, method: str) -> bool:
    return getattr(type(step), method) is not getattr(Step, method)


# The host's imports, or their in-memory stand-ins.
class _FakeHost:
    def __init__(self) -> None:
        self.kv: Dict[str, str] = {}
        self.config: Dict[str, str] = {}
        self.logs: List[tuple] = []
        self.kv_failure: Optional[str] = None


_fake = _FakeHost()


class kv:
    """The plugin's durable key-value store; writes commit with the call's result."""

    @staticmethod
    def get(key: str) -> Optional[str]:
        if _HOST:
            try:
                return _kv.get(key)
            except _Err as err:
                raise StepError.retryable(f"kv get `{key}`: {err.value}")
        if _fake.kv_failure:
            raise StepError.retryable(f"kv get `{key}`: {_fake.kv_failure}")
        return _fake.kv.get(key)

    @staticmethod
    def get_json(key: str) -> Any:
        text = kv.get(key)
        if text is None:
            return None
        try:
            return json.loads(text)
        except ValueError as err:
            raise StepError.permanent(f"kv `{key}` holds invalid JSON: {err}")

    @staticmethod
    def set(key: str, value: str) -> None:
        if _HOST:
            try:
                _kv.set(key, value)
            except _Err as err:
                raise StepError.retryable(f"kv set `{key}`: {err.value}")
            return
        if _fake.kv_failure:
            raise StepError.retryable(f"kv set `{key}`: {_fake.kv_failure}")
        _fake.kv[key] = value

    @staticmethod
    def set_json(key: str, value: Any) -> None:
        kv.set(key, json.dumps(value))

    @staticmethod
    def delete(key: str) -> None:
        if _HOST:
            try:
                _kv.delete(key)
            except _Err as err:
                raise StepError.retryable(f"kv delete `{key}`: {err.value}")
            return
        if _fake.kv_failure:
            raise StepError.retryable(f"kv delete `{key}`: {_fake.kv_failure}")
        _fake.kv.pop(key, None)


class log:
    """Lines into the host's log, tagged with the saga and step."""

    @staticmethod
    def _write(level: str, message: str) -> None:
        if _HOST:
            _log.log(getattr(_log.Level, level.upper()), message)
        else:
            _fake.logs.append((level, message))

    @staticmethod
    def trace(message: str) -> None:
        log._write("trace", message)

    @staticmethod
    def debug(message: str) -> None:
        log._write("debug", message)

    @staticmethod
    def info(message: str) -> None:
        log._write("info", message)

    @staticmethod
    def warn(message: str) -> None:
        log._write("warn", message)

    @staticmethod
    def error(message: str) -> None:
        log._write("error", message)


class config:
    """Values the operator grants to the plugin."""

    @staticmethod
    def get(key: str) -> Optional[str]:
        return _config.get(key) if _HOST else _fake.config.get(key)


# The component's `step` export, built from the steps.
def _context(ctx: Any) -> StepContext:
    def obj(what: str, text: str) -> Dict[str, Any]:
        value = json.loads(text) if text.strip() else {}
        if not isinstance(value, dict):
            raise StepError.permanent(f"{what} is not a JSON object")
        return value

    return StepContext(ctx.tx_id, ctx.tx_type, ctx.step_name, ctx.step_index,
                       ctx.phase.name.lower(), ctx.attempt, ctx.execute_outcome.name.lower(),
                       obj("input", ctx.input), obj("outputs", ctx.outputs))


def _wit_error(err: StepError) -> Any:
    if err.is_retryable:
        return _Err(_types.StepError_Retryable(err.message))
    return _Err(_types.StepError_Permanent(err.message))


_POLICY_KEYS = ("max_retries", "retry_interval_ms", "retry_max_interval_ms", "timeout_ms",
                "idempotent")


def _policy(policy: Optional[Dict[str, Any]]) -> Any:
    if policy is None:
        return None
    unknown = set(policy) - set(_POLICY_KEYS)
    if unknown:
        raise ValueError(f"unknown policy keys {sorted(unknown)}; known: {_POLICY_KEYS}")
    return _types.StepPolicy(**{k: policy.get(k) for k in _POLICY_KEYS})


def export(*steps: Step) -> type:
    """The class componentize-py exports as `step`: assign it to `Step` in the app module."""
    by_name = {s.name: s for s in steps}

    def find(name: str) -> Step:
        if name not in by_name:
            raise StepError.permanent(f"unknown step `{name}`")
        return by_name[name]

    def call(name: str, ctx: Any, method: str) -> StepContext:
        try:
            context = _context(ctx)
            getattr(find(name), method)(context)
            return context
        except StepError as err:
            raise _wit_error(err)

    base = _exports.Step if _HOST else object

    class Exported(base):  # type: ignore[misc, valid-type]
        def steps(self) -> list:
            return [_types.StepInfo(
                name=s.name, version=s.version, service=s.service,
                supports_compensation=_overrides(s, "compensate"),
                supports_idempotency=_overrides(s, "idempotency_key"),
                supports_confirm=_overrides(s, "confirm"),
                description=s.description,
                policy=_policy(s.policy)) for s in steps]

        def execute(self, step: str, ctx: Any) -> Any:
            context = call(step, ctx, "execute")
            return _types.ExecuteResult_Done(json.dumps(context.set))

        def compensate(self, step: str, ctx: Any) -> Any:
            call(step, ctx, "compensate")
            return _types.CompensateResult_Done()

        def confirm(self, step: str, ctx: Any) -> None:
            call(step, ctx, "confirm")

        def on_reply(self, step: str, ctx: Any, reply: Any) -> Any:
            raise _wit_error(StepError.permanent(f"step `{step}` does not wait for replies"))

        def idempotency_key(self, step: str, ctx: Any) -> Optional[str]:
            try:
                return find(step).idempotency_key(_context(ctx))
            except StepError:
                return None

    return Exported


class StepTest:
    """Call steps as the host does, against a fresh in-memory kv, config and log."""

    def __init__(self, tx_id: str = "tx-test") -> None:
        global _fake
        _fake = _FakeHost()
        self.tx_id = tx_id
        self.outputs: Dict[str, Any] = {}

    @property
    def kv(self) -> Dict[str, str]:
        return _fake.kv

    @property
    def config(self) -> Dict[str, str]:
        return _fake.config

    @property
    def logs(self) -> List[tuple]:
        return _fake.logs

    def kv_fail(self, message: Optional[str]) -> None:
        _fake.kv_failure = message

    def _run(self, step: Step, method: str, input: Dict[str, Any], phase: str,
             outcome: str) -> StepContext:
        ctx = StepContext(self.tx_id, "test", step.name, 0, phase, 1, outcome,
                          dict(input), dict(self.outputs))
        before = dict(_fake.kv)
        try:
            getattr(step, method)(ctx)
        except Exception:
            _fake.kv.clear()
            _fake.kv.update(before)  # a failed call's writes are discarded
            raise
        return ctx

    def execute(self, step: Step, input: Dict[str, Any]) -> Dict[str, Any]:
        ctx = self._run(step, "execute", input, "execute", "not_applicable")
        self.outputs.update(ctx.set)
        return ctx.set

    def compensate(self, step: Step, input: Dict[str, Any], outcome: str = "completed") -> None:
        self._run(step, "compensate", input, "compensate", outcome)

    def confirm(self, step: Step, input: Dict[str, Any]) -> None:
        self._run(step, "confirm", input, "confirm", "not_applicable")
