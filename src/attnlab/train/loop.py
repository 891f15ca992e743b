"""The one trainer: AdamW, warmup + cosine, clipping, evaluation, early stop, JSONL metrics,
atomic checkpoints with exact resume, and DistributedDataParallel under ``torchrun``.

Data are stateless (batch ``i`` depends only on the seed and ``i``) and the model has no dropout, so
a resumed run repeats the uninterrupted one bit for bit on a CPU, and ``N`` ranks each taking
``batch_size / N`` rows of the same global batch reproduce one process.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from ..checks import finite_checks
from ..models import LM
from ..tasks import IGNORE
from . import checkpoint, ownership
from .config import TrainConfig, model_for_task, to_dict
from .metrics import curves, read_rows


def lr_at(cfg: TrainConfig, step: int) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    frac = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, frac))))


def loss_and_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Mean loss over labelled tokens; accuracy per sequence (fraction of its labels hit), summed; count."""
    V = logits.shape[-1]
    loss = F.cross_entropy(logits.reshape(-1, V).float(), labels.reshape(-1), ignore_index=IGNORE)
    mask = labels != IGNORE
    return (loss, *_sequence_accuracy((logits.argmax(-1) == labels) & mask, mask))


def _sequence_accuracy(hit: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Per sequence, the fraction of its labelled positions (``mask``) that were hit, summed over the sequences
    that have a label; and their count."""
    n = mask.sum(-1)
    has = n > 0
    return (hit.sum(-1)[has].double() / n[has].double()).sum(), int(has.sum())


def _labelled(model, x: torch.Tensor, y: torch.Tensor, prefix_len) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """``model``'s logits where ``y`` has a label, those labels and the label mask; with every position labelled,
    the full ``[b, t, V]`` logits, ``y`` and None."""
    mask = y != IGNORE
    if bool(mask.all()):
        return model(x, prefix_len=prefix_len), y, None
    return model(x, prefix_len=prefix_len, at=mask), y[mask], mask  # [n, V], [n]


def labelled_loss(model, x: torch.Tensor, y: torch.Tensor, prefix_len=None) -> torch.Tensor:
    """The loss of :func:`labelled_loss_and_accuracy` alone: what a training step needs."""
    logits, target, _ = _labelled(model, x, y, prefix_len)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), target.reshape(-1))


def labelled_loss_and_accuracy(model, x: torch.Tensor, y: torch.Tensor, prefix_len=None
                               ) -> tuple[torch.Tensor, torch.Tensor, int]:
    """:func:`loss_and_accuracy` of ``model`` on ``x`` against ``y``, with the head run only where ``y`` has a
    label: the same numbers (up to float summation order), without the vocabulary-wide matmul and softmax of
    the positions no loss reads. MQAR labels one position in 8–16, and there the head was a third of a step."""
    logits, target, mask = _labelled(model, x, y, prefix_len)
    if mask is None:
        return loss_and_accuracy(logits, target)
    hit = torch.zeros_like(mask)
    hit[mask] = logits.argmax(-1) == target
    return (F.cross_entropy(logits.float(), target), *_sequence_accuracy(hit, mask))


class _Dist:
    def __init__(self):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.active = self.world > 1
        if self.active:
            import torch.distributed as dist

            if not dist.is_initialized():
                dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")

    def mean(self, x: float) -> float:
        if not self.active:
            return x
        import torch.distributed as dist

        t = torch.tensor([x], dtype=torch.float64)
        dist.all_reduce(t)
        return float(t) / self.world


EVAL_TOKENS = 32_768  # validation batches are joined into forwards of up to this many tokens


def _joined(batches):
    """Consecutive ``(x, y)`` batches of equal length concatenated into forwards of up to :data:`EVAL_TOKENS`
    tokens: the ledger's models are small enough that per-op overhead dominates a batch of 16–64 sequences,
    and the loss and accuracy are sums over tokens and sequences either way."""
    xs, ys, tokens = [], [], 0
    for x, y in batches:
        if xs and (tokens + x.numel() > EVAL_TOKENS or x.shape[1] != xs[0].shape[1]):
            yield torch.cat(xs), torch.cat(ys)
            xs, ys, tokens = [], [], 0
        xs.append(x)
        ys.append(y)
        tokens += x.numel()
    if xs:
        yield torch.cat(xs), torch.cat(ys)


@torch.no_grad()
def evaluate(model, data, cfg: TrainConfig) -> dict:
    was = model.training
    model.eval()
    tot_loss, tot_tok, acc_sum, n_seq = 0.0, 0, 0.0, 0
    for x, y in _joined(data.eval_batches(cfg.batch_size, cfg.eval_batches, seed=cfg.seed)):
        loss, acc, n = labelled_loss_and_accuracy(model, x, y, data.prefix_len)
        k = int((y != IGNORE).sum())
        tot_loss += float(loss) * k
        tot_tok += k
        acc_sum += float(acc)
        n_seq += n
    model.train(was)
    return {"loss": tot_loss / max(1, tot_tok), "accuracy": acc_sum / max(1, n_seq)}


def _truncate_metrics(path: Path, step: int) -> None:
    """Keep the rows up to ``step`` (a resumed run rewrites the rest; a torn last line is dropped)."""
    if not path.exists():
        return
    keep = [row for row in read_rows(path) if row.get("step", 0) <= step]
    path.write_text("".join(json.dumps(row) + "\n" for row in keep))


class _Logger:
    """The run's extra logger (``cfg.logger``): TensorBoard under RUN/tb, or Weights & Biases offline under
    RUN/wandb; metrics.jsonl is always written. A logger that is not installed is an error, not a silence."""

    def __init__(self, cfg: TrainConfig, run_dir: Path):
        self.tb = self.wb = None
        if cfg.logger == "tensorboard":
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise ValueError("logger: tensorboard is not installed (pip install tensorboard)") from None
            self.tb = SummaryWriter(str(run_dir / "tb"))
        elif cfg.logger == "wandb":
            try:
                import wandb
            except ImportError:
                raise ValueError("logger: wandb is not installed (pip install wandb)") from None
            self.wb = wandb.init(mode="offline", dir=str(run_dir), name=cfg.name, config=to_dict(cfg), reinit=True)

    def log(self, split: str, row: dict, step: int) -> None:
        scalars = {f"{split}/{k}": v for k, v in row.items() if isinstance(v, (int, float)) and k != "step"}
        if self.tb:
            for k, v in scalars.items():
                self.tb.add_scalar(k, v, step)
        if self.wb:
            self.wb.log(scalars, step=step)

    def close(self) -> None:
        if self.tb:
            self.tb.close()
        if self.wb:
            self.wb.finish()


def _progress_bar(cfg: TrainConfig, start: int, model: LM):
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    mixers = ", ".join(sorted(set(model.cfg.mixers())))
    Console(stderr=True).print(f"{cfg.name}: {model.num_params():,} parameters, {model.cfg.n_layers} layers of {mixers}"
                               + (f", resuming at step {start}" if start else ""))
    bar = Progress(TextColumn(f"[bold]{cfg.name}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                   TextColumn("{task.fields[info]}"), TimeRemainingColumn())
    bar.start()
    bar.add_task("train", total=cfg.steps, completed=start, info="")
    return bar


def train(cfg: TrainConfig, resume: bool = False, progress: bool = True) -> dict:
    """Train one model; return (and write to ``run_dir/summary.json``) the final numbers.

    ``cfg.threads`` holds for this run only: the caller's thread count is restored afterwards."""
    before = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        return _train(cfg, resume, progress)
    finally:
        torch.set_num_threads(before)


def adamw(groups, **options) -> torch.optim.AdamW:
    """The trainer's optimizer: AdamW with its fused update where the parameters' device has one (CPU, CUDA). The
    fused update is one kernel a step instead of about ten small ops per parameter: 0.2 against 1.1 ms a step
    for S5's one-layer MQAR model on one thread, 0.4 against 2.3 ms for its BPE language model."""
    params = [p for g in groups for p in (g["params"] if isinstance(g, dict) else [g])]
    fused = bool(params) and all(p.device.type in ("cpu", "cuda") and p.dtype.is_floating_point for p in params)
    return torch.optim.AdamW(groups, fused=fused or None, **options)


def _train(cfg: TrainConfig, resume: bool, progress: bool) -> dict:
    dist = _Dist()
    if cfg.batch_size % dist.world:
        raise ValueError(f"batch_size ({cfg.batch_size}) must be divisible by the number of ranks ({dist.world})")
    model, data = build_model(cfg)
    n_params = model.num_params()
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    opt = adamw([{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
                lr=cfg.lr, betas=tuple(cfg.betas))
    run_dir = cfg.run_dir
    lead = dist.rank == 0
    with contextlib.ExitStack() as owner:
        if lead:  # one writer per folder, and the folder's config checked before anything is written
            owner.enter_context(ownership.locked(run_dir))
            ownership.check_folder(run_dir, to_dict(cfg), resume)
            (run_dir / "config.json").write_text(json.dumps(to_dict(cfg), indent=1))
        return _train_owned(cfg, resume, progress, dist, model, data, opt, n_params, run_dir, lead)


def _train_owned(cfg, resume, progress, dist, model, data, opt, n_params, run_dir, lead) -> dict:
    start, history = 0, {}
    if resume:
        meta = checkpoint.load_latest(run_dir, model, opt)
        if meta is not None:
            start, history = meta["step"], meta["extra"].get("history", {})
    if lead:
        if start == 0 and not resume:
            (run_dir / "metrics.jsonl").unlink(missing_ok=True)
        _truncate_metrics(run_dir / "metrics.jsonl", start)
    ddp_model = model
    if dist.active:
        from torch.nn.parallel import DistributedDataParallel as DDP

        ddp_model = DDP(model)
    metrics = open(run_dir / "metrics.jsonl", "a") if lead else None
    logger = _Logger(cfg, run_dir) if lead else None
    local = cfg.batch_size // dist.world
    tokens_done, t0 = 0, time.perf_counter()
    last_loss = history.get("last_loss", float("nan"))
    stopped, last_eval = False, history.get("last_eval")
    stop_reason = history.get("stop_reason")
    best, bad = history.get("best_valid_loss"), history.get("evals_without_gain", 0)
    earlier = history.get("seconds", 0.0)  # time spent in the segments before a resume

    with contextlib.ExitStack() as cleanup:
        cleanup.enter_context(finite_checks(False))  # the loss check below catches NaN/Inf: skip per-op scans
        for handle in (metrics, logger):
            if handle:
                cleanup.callback(handle.close)
        bar = _progress_bar(cfg, start, model) if progress and lead else None
        if bar:
            cleanup.callback(bar.stop)
        model.train()
        for step in range(start, cfg.steps):
            for g in opt.param_groups:
                g["lr"] = lr_at(cfg, step)
            x, y = data.batch(step, cfg.batch_size, cfg.seed)
            x, y = x[dist.rank * local : (dist.rank + 1) * local], y[dist.rank * local : (dist.rank + 1) * local]
            loss = labelled_loss(ddp_model, x, y, data.prefix_len)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss became {float(loss)} at step {step}; lower lr (now {cfg.lr}) or check "
                                         "the mixer's stability")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip if cfg.grad_clip else math.inf)
            opt.step()
            last_loss = dist.mean(float(loss.detach()))
            tokens_done += x.numel() * dist.world
            done = step + 1
            if lead and (done % cfg.log_every == 0 or done == cfg.steps):
                rate = tokens_done / max(1e-9, time.perf_counter() - t0)
                row = {"loss": last_loss, "lr": lr_at(cfg, step), "grad_norm": float(gnorm), "tokens_per_s": rate}
                metrics.write(json.dumps({"step": done, **row}) + "\n")
                metrics.flush()
                logger.log("train", row, done)
                if bar:
                    bar.update(bar.task_ids[0], completed=done, info=f"loss {last_loss:.4f} · {rate:,.0f} tok/s")
            if done % cfg.eval_every == 0 or done == cfg.steps:
                last_eval = evaluate(model, data, cfg)
                if lead:
                    metrics.write(json.dumps({"step": done, "split": "valid", **last_eval}) + "\n")
                    metrics.flush()
                    logger.log("valid", last_eval, done)
                if cfg.early_stop and cfg.early_stop.reached(last_eval):
                    stopped, stop_reason = True, "early_stop"
                if cfg.plateau:
                    if best is None or last_eval["loss"] < best - cfg.plateau.min_delta:
                        best, bad = last_eval["loss"], 0
                    else:
                        bad += 1
                    if bad >= cfg.plateau.patience and not stopped:
                        stopped, stop_reason = True, "plateau"
            if lead and (done % cfg.ckpt_every == 0 or done == cfg.steps or stopped):
                checkpoint.save(run_dir, done, model, opt,
                                {"history": {"last_loss": last_loss, "last_eval": last_eval, "stop_reason": stop_reason,
                                             "best_valid_loss": best, "evals_without_gain": bad,
                                             "seconds": earlier + time.perf_counter() - t0}})
            if stopped:
                break
    if not stopped:  # ran to the end: for a plateau run that is its cap, reached before the plateau
        stop_reason = stop_reason or ("step_cap" if cfg.plateau else "steps")
    summary = {"name": cfg.name, "steps": done if cfg.steps > start else start, "final_loss": last_loss,
               "valid": last_eval, "params": n_params, "stopped_early": stopped, "stop_reason": stop_reason,
               "seconds": earlier + time.perf_counter() - t0, "optimum": getattr(data, "optimum", None)}
    if lead:
        summary["valid_curve"] = valid_curve(run_dir)
        tmp = run_dir / "summary.json.tmp"
        tmp.write_text(json.dumps(summary, indent=1))
        os.replace(tmp, run_dir / "summary.json")
    return summary


def valid_curve(run_dir: Path) -> dict[str, list[float]]:
    """The run's validation evaluations from ``metrics.jsonl``: ``{"step": […], "loss": […], "accuracy": […]}``."""
    return curves(Path(run_dir) / "metrics.jsonl")["valid"]


def build_model(cfg: TrainConfig) -> tuple[LM, object]:
    """The model and task data of a config (weights as initialised), e.g. to load a checkpoint into."""
    data = cfg.task.build(cfg.seed)
    torch.manual_seed(cfg.seed)
    return LM(model_for_task(cfg.model, data.vocab_size)), data


def load_trained(run_dir: str | Path) -> tuple[LM, object, TrainConfig]:
    """Model (with its last good checkpoint, hash-verified), task data and config of a finished run folder."""
    from .config import make_config

    run_dir = Path(run_dir)
    cfg = make_config(json.loads((run_dir / "config.json").read_text()))
    model, data = build_model(cfg)
    if checkpoint.load_latest(run_dir, model) is None:
        raise FileNotFoundError(f"{run_dir} has no usable checkpoint")
    return model.eval(), data, cfg
