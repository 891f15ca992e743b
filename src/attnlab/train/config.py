"""Training configs: typed all the way down, loaded from YAML, JSON or a Python file, with ``--set key=value``.

A :class:`TrainConfig` holds a typed task config (one of the task dataclasses of :mod:`attnlab.tasks`,
chosen by its ``name``), a typed :class:`~attnlab.models.LMConfig` and an optional
:class:`EarlyStop`. Files and ``--set`` give nested dicts; :func:`make_config` turns them into the
types, and every error names the key path (``model.short_conv``): an unknown key (with the closest
valid one), a wrong type, or options that do not go together. Code builds configs from the types
directly (``dataclasses.replace`` for a variant) and passes them through :func:`make_config` to be
checked the same way.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import runpy
import types
import typing
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..models import LMConfig
from ..tasks import MQAR, TASKS, Markov, Positional, Text
from ..user_modules import import_user_module

TaskConfig = MQAR | Markov | Positional | Text
TASK_NAMES = {cls: name for name, cls in TASKS.items()}


@dataclass
class EarlyStop:
    """Stop when the validation ``metric`` reaches ``threshold`` (accuracy ≥, loss ≤)."""

    metric: str = "accuracy"
    threshold: float = 1.0

    def reached(self, valid: dict) -> bool:
        v = valid[self.metric]
        return v >= self.threshold if self.metric == "accuracy" else v <= self.threshold


@dataclass
class Plateau:
    """Stop when the validation loss has not fallen by more than ``min_delta`` (nats) below its best for
    ``patience`` evaluations in a row: training to convergence, with ``steps`` as the cap."""

    patience: int = 3
    min_delta: float = 0.0


@dataclass
class TrainConfig:
    task: TaskConfig = field(default_factory=MQAR)
    model: LMConfig = field(default_factory=LMConfig)
    name: str = "run"
    out: str = "runs"
    seed: int = 0
    steps: int = 1000
    batch_size: int = 32  # global: split across DDP ranks
    lr: float = 3e-3
    weight_decay: float = 0.1
    betas: tuple = (0.9, 0.98)
    warmup: int = 50
    min_lr_ratio: float = 0.1
    grad_clip: float | None = 1.0  # the gradient-norm clip; None: no clipping
    eval_every: int = 100
    eval_batches: int = 8
    early_stop: EarlyStop | None = None
    plateau: Plateau | None = None  # stop at a validation plateau; steps is then the cap
    ckpt_every: int = 200
    log_every: int = 10
    threads: int | None = None
    logger: str | None = None  # besides metrics.jsonl: "tensorboard" (RUN/tb) or "wandb" (offline, RUN/wandb)
    imports: list = field(default_factory=list)  # your modules that register mixers, imported before building

    @property
    def run_dir(self) -> Path:
        return Path(self.out) / self.name


def _suggest(key: str, valid) -> str:
    close = difflib.get_close_matches(key, list(valid), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _check_type(key: str, value: Any, tp) -> Any:
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return _check_type(key, value, a)
            except TypeError:
                pass
        raise TypeError(f"{key} must be {' or '.join(getattr(a, '__name__', str(a)) for a in args)}, got "
                        f"{type(value).__name__} {value!r}")
    if origin is not None:
        tp = origin
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is tuple and isinstance(value, list):
        return tuple(value)
    if tp is list and isinstance(value, str):
        return value
    if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
        raise TypeError(f"{key} must be {tp.__name__}, got {type(value).__name__} {value!r}")
    return value


def _build_dataclass(cls, data: dict, prefix: str):
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    out = {}
    for k, v in data.items():
        if k not in names:
            raise ValueError(f"unknown key {prefix}{k}{_suggest(k, names)}; valid keys: {', '.join(sorted(names))}")
        out[k] = _check_type(prefix + k, v, hints[k])
    return cls(**out)


def task_config(task: dict | TaskConfig) -> TaskConfig:
    """A task config from ``{"name": …, **fields}`` (or a task config, checked again)."""
    if dataclasses.is_dataclass(task) and type(task) in TASK_NAMES:
        task = task_dict(task)
    if not isinstance(task, dict):
        raise TypeError(f"task must be a mapping with a name, got {type(task).__name__}")
    if "name" not in task:
        raise ValueError(f"task.name is required; one of {', '.join(TASKS)}")
    name = task["name"]
    if name not in TASKS:
        raise ValueError(f"task.name: unknown task {name!r}{_suggest(name, TASKS)}; valid: {', '.join(TASKS)}")
    return _build_dataclass(TASKS[name], {k: v for k, v in task.items() if k != "name"}, "task.")


def task_dict(task: TaskConfig) -> dict:
    return {"name": TASK_NAMES[type(task)], **dataclasses.asdict(task)}


def model_config(model: dict | LMConfig) -> LMConfig:
    """A model config from a dict (or a model config, checked again); the mixer names are checked."""
    if isinstance(model, LMConfig):
        model = dataclasses.asdict(model)
    if not isinstance(model, dict):
        raise TypeError(f"model must be a mapping, got {type(model).__name__}")
    cfg = _build_dataclass(LMConfig, model, "model.")
    cfg.mixers()
    return cfg


def model_for_task(model: LMConfig, vocab_size: int) -> LMConfig:
    """The model config with the task's vocabulary (a model that names another one is an error)."""
    if model.vocab_size is not None and model.vocab_size != vocab_size:
        raise ValueError(f"model.vocab_size={model.vocab_size} disagrees with the task's vocabulary ({vocab_size})")
    return dataclasses.replace(model, vocab_size=vocab_size)


def parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """``["model.d_model=128", "task.name=markov"]`` → nested updates (values parsed as JSON when they parse)."""
    data = json.loads(json.dumps(data))
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"--set expects key=value, got {item!r}")
        key, val = item.split("=", 1)
        parts = key.strip().split(".")
        d = data
        for p in parts[:-1]:
            if not isinstance(d.setdefault(p, {}), dict):
                raise ValueError(f"--set {key}: {p} is not a section")
            d = d[p]
        d[parts[-1]] = parse_value(val)
    return data


def load_file(path: str | Path) -> dict:
    p = Path(path)
    if not p.exists():
        raise ValueError(f"config file {p} does not exist")
    if not p.is_file():
        raise ValueError(f"config file {p} is not a file")
    if p.suffix in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(p.read_text())
        except yaml.YAMLError as e:
            where = getattr(e, "problem_mark", None)
            at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
            raise ValueError(f"config file {p} is not valid YAML{at}: {getattr(e, 'problem', e)}") from None
    elif p.suffix == ".json":
        try:
            data = json.loads(p.read_text())
        except ValueError as e:
            raise ValueError(f"config file {p} is not valid JSON: {e}") from None
    elif p.suffix == ".py":
        ns = runpy.run_path(str(p))
        if "config" not in ns:
            raise ValueError(f"{p} must define a dict called config")
        data = ns["config"]
    else:
        raise ValueError(f"config must be .yaml, .yml, .json or .py, got {p.name}")
    if data is None or data == {}:
        raise ValueError(f"config file {p} is empty: it must set at least the task (and usually the model and name)")
    if not isinstance(data, dict):
        raise ValueError(f"{p} must hold a mapping at the top level")
    return data


def _section(key: str, cls, value):
    """An optional typed section (None, a mapping, or an instance of ``cls`` checked again)."""
    if value is None:
        return None
    if isinstance(value, cls):
        value = dataclasses.asdict(value)
    if not isinstance(value, dict):
        raise TypeError(f"{key} must be a mapping of {', '.join(f.name for f in dataclasses.fields(cls))}, "
                        f"got {type(value).__name__}")
    return _build_dataclass(cls, value, f"{key}.")


def make_config(data: dict | TrainConfig) -> TrainConfig:
    """A checked :class:`TrainConfig` from nested dicts (a file, ``--set``) or from a config built in code."""
    if isinstance(data, TrainConfig):
        data = to_dict(data)
    if not isinstance(data, dict):
        raise TypeError(f"a config must be a mapping, got {type(data).__name__}")
    data = dict(data)
    task = task_config(data.pop("task", {"name": "mqar"}))
    model = model_config(data.pop("model", {}))
    early = data.pop("early_stop", None)
    plateau = data.pop("plateau", None)
    cfg = _build_dataclass(TrainConfig, data, "")
    cfg.task, cfg.model = task, model
    cfg.plateau = _section("plateau", Plateau, plateau)
    cfg.early_stop = _section("early_stop", EarlyStop, early)
    if cfg.plateau and (cfg.plateau.patience < 1 or not cfg.plateau.min_delta >= 0):
        raise ValueError(f"plateau needs patience >= 1 and min_delta >= 0, got {cfg.plateau}")
    if cfg.early_stop and cfg.early_stop.metric not in ("accuracy", "loss"):
        raise ValueError(f"early_stop.metric must be 'accuracy' or 'loss', got {cfg.early_stop.metric!r}")
    for mod in cfg.imports:
        import_user_module(mod, "imports:")
    for key in ("steps", "batch_size", "eval_every", "ckpt_every", "log_every", "eval_batches"):
        if getattr(cfg, key) < 1:
            raise ValueError(f"{key} must be >= 1, got {getattr(cfg, key)}")
    _check_ranges(cfg)
    return cfg


def _check_ranges(cfg: TrainConfig) -> None:
    """Every numeric setting inside the range where training means what it says (a negative clip ascends,
    a negative learning-rate ratio descends uphill): refused here, where the settings are declared."""
    def bad(key, expected):
        raise ValueError(f"{key} must be {expected}, got {getattr(cfg, key)!r}")

    finite = lambda x: math.isfinite(x)  # noqa: E731
    if not (finite(cfg.lr) and cfg.lr > 0):
        bad("lr", "a positive finite number")
    if not (finite(cfg.weight_decay) and cfg.weight_decay >= 0):
        bad("weight_decay", "≥ 0")
    if not (finite(cfg.min_lr_ratio) and 0 <= cfg.min_lr_ratio <= 1):
        bad("min_lr_ratio", "in [0, 1] (the final learning rate as a fraction of lr)")
    if cfg.grad_clip is not None and not (finite(cfg.grad_clip) and cfg.grad_clip > 0):
        bad("grad_clip", "a positive finite norm, or null for no clipping")
    if cfg.warmup < 0:
        bad("warmup", "≥ 0 steps")
    if cfg.threads is not None and cfg.threads < 1:
        bad("threads", "≥ 1, or null for torch's default")
    if len(cfg.betas) != 2 or not all(finite(b) and 0 <= b < 1 for b in cfg.betas):
        bad("betas", "two numbers in [0, 1)")
    if cfg.seed < 0:
        bad("seed", "≥ 0")
    if cfg.logger not in (None, "tensorboard", "wandb"):
        bad("logger", "null, 'tensorboard' or 'wandb'")
    if cfg.steps <= cfg.warmup:
        warnings.warn(f"steps ({cfg.steps}) ≤ warmup ({cfg.warmup}): the run ends inside its warm-up and the "
                      f"learning rate never reaches lr", RuntimeWarning, stacklevel=3)
    name = Path(cfg.name)
    if not cfg.name or name.is_absolute() or len(name.parts) != 1 or cfg.name in (".", ".."):
        bad("name", "one folder name (no '/', '..' or absolute path): the run folder is out/name")


def to_dict(cfg: TrainConfig) -> dict:
    """Nested dicts in JSON types (what ``config.json`` holds); the task carries its ``name``."""
    d = dataclasses.asdict(cfg)
    d["task"] = task_dict(cfg.task)
    d["betas"] = list(d["betas"])
    return d
