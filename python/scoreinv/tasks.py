"""Tasks and reconstruction: ``Task("ct", size=64, views=23)`` builds the operator of
``scoreinv simulate/reconstruct ct`` for an image shape; :func:`reconstruct` runs the methods of
``scoreinv reconstruct`` (the task's baselines and the score-based samplers ``score``,
``score-sde``, ``dps``, ``ddim``, ``diffpir``) with the same validated defaults and the same
seeding, so that a measurement gives the same bits in Python and on the command line."""

from __future__ import annotations

import json
import logging
import os
from typing import NamedTuple, Sequence

import torch

from . import _scoreinv
from ._tensors import as_tensor, device_name, real_dtype_of
from .models import Model
from .ops import Operator

__all__ = ["Task", "Reconstruction", "reconstruct", "TASKS"]

# Notes on the settings used (e.g. those validated for the model), as the command line prints.
_log = logging.getLogger("scoreinv")

#: the registered tasks
TASKS: tuple = tuple(_scoreinv.task_names())


class Task:
    """A task (``ct``, ``mri``, ``inpaint``, ``colorize``, ``deblur``) for images of ``shape``
    ``(C, H, W)`` (or ``size`` N: ``(1, N, N)``, ``(3, N, N)`` for colorize), with the fields of
    the task's settings as keyword arguments, as ``metrics.json`` records them (CT: ``views``,
    ``angles``, ``filter``; MRI: ``acceleration``, ``center_fraction``, ``mask_kind``, ``lines``,
    ``coils``, ``mask_file``; inpaint: ``mask``; deblur: ``sigma``, ``psf``, ``boundary``,
    ``epsilon``; missing ones take the published defaults, unknown ones are refused). ``seed``
    seeds random masks and coil maps, as ``--seed``."""

    def __init__(
        self,
        name: str,
        shape: Sequence[int] | None = None,
        size: int | None = None,
        seed: int = 0,
        **settings,
    ):
        if (shape is None) == (size is None):
            raise ValueError("Task: give the image shape (C, H, W) or a size N, one of them")
        if shape is None:
            shape = (3 if name == "colorize" else 1, int(size), int(size))
        self._t = _scoreinv.task(name, json.dumps(settings), [int(s) for s in shape], int(seed))
        self.name: str = self._t.name
        self.shape: tuple = tuple(self._t.shape)
        self.seed: int = self._t.seed
        #: the settings with every default filled in
        self.settings: dict = json.loads(self._t.settings_json)
        #: the task's baselines (the first ones are its default methods)
        self.baselines: tuple = tuple(self._t.baselines)

    def operator(self, device="cpu") -> Operator:
        """The task's operator ``A`` on ``device`` (the very operator the methods use)."""
        return Operator._wrap(self._t.operator(device_name(device)))

    def simulate(self, x, noise: str | None = None, seed: int | None = None):
        """The measurement ``y = A x + n`` of one image ``x`` ``shape``, as
        ``scoreinv simulate TASK --seed SEED --noise NOISE`` makes it (noise: the task's default,
        ``none``, ``gaussian:σ`` relative to the peak of ``|A x|``, ``poisson:I0[:MU]`` for CT).
        Seeds torch's global generator as the command line seeds it."""
        t, back = as_tensor(x, "simulate: x")
        return back(self._t.simulate(t, noise, seed))

    def __repr__(self) -> str:
        return f"Task({self.name!r}, shape={self.shape}, seed={self.seed}, {self.settings})"


class Reconstruction(NamedTuple):
    """One method's reconstruction: the posterior mean (or the baseline's image), the pixelwise
    posterior standard deviation (with several samples), the seconds per measurement, the
    network evaluations per sample (score methods), and the method's settings as run (score
    methods: sampler, ``n_steps``, ``steps_run``, ``samples``, ``start``, ``sampler_settings``
    after the model's validated record and the caller's settings; TV: its weight and
    iterations; ``None`` otherwise), as ``metrics.json`` records them."""

    mean: torch.Tensor
    std: torch.Tensor | None
    method: str
    seconds: float
    nfe: int | None
    settings: dict | None = None


# The task whose methods and presets apply to an operator of scoreinv.ops, by operator name.
_TASK_OF_OPERATOR = {
    "radon": "ct",
    "fanbeam": "ct",
    "mri": "mri",
    "sense": "mri",
    "masking": "inpaint",
    "grayscale": "colorize",
    "blur": "deblur",
}

# ScoreSettings fields a caller may set (``lambda`` is a Python keyword: ``lambda_``).
_SCORE_FIELDS = {
    "snr": "snr",
    "lambda_": "lambda",
    "zeta": "zeta",
    "eta": "eta",
    "diffpir_lambda": "diffpir_lambda",
    "diffpir_zeta": "diffpir_zeta",
    "sigma_y": "sigma_y",
    "cg_iters": "cg_iters",
    "consistency_iters": "consistency_iters",
    "cuda_graph": "cuda_graph",
    "start": "start",
    "t0": "t0",
    "start_iters": "start_iters",
}


def _positive_int(name, v):
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValueError(f"{name} {v!r}: must be a positive integer")
    return v


def reconstruct(
    task: Task,
    y,
    model: str | os.PathLike | Model | None = None,
    method: str | Sequence[str] = "score",
    steps: int | None = None,
    samples: int = 1,
    seed: int = 0,
    normalise: bool = False,
    tv_lambda: float | None = None,
    tv_iters: int | None = None,
    progress: bool = False,
    task_name: str | None = None,
    **score_settings,
):
    """Reconstructs the measurement ``y`` (``[B] + A.output_shape`` or one measurement) of
    ``task`` — a :class:`Task`, or any operator (:mod:`scoreinv.ops`, :func:`ops.from_callables`,
    :func:`scoreinv.deepinv.operator`) with the methods and published settings of the task
    ``task_name`` (inferred for the operators of :mod:`scoreinv.ops`) — with ``method`` (one
    name, comma-separated names or a list: the task's baselines and, with ``model``, ``score``,
    ``score-sde``, ``dps``, ``ddim``, ``diffpir``).

    Defaults as ``scoreinv reconstruct``: ``steps`` the model's SDE, the sampler settings
    validated for the model and task (its ``config.json``), else the task's published ones;
    ``score_settings`` override them (``snr``, ``lambda_``, ``zeta``, ``eta``, ``diffpir_lambda``,
    ``diffpir_zeta``, ``sigma_y``, ``cg_iters``, ``consistency_iters``, ``start``, ``t0``,
    ``start_iters``, ``cuda_graph``). ``seed`` seeds the posterior samples as ``--seed`` seeds a
    case (torch's global generator is reseeded). ``normalise``: divide ``y`` by the peak of
    ``|A⁺ y|`` first and scale the results back (a measurement of unknown scale; the command line
    does so for a CT or MRI file without a simulation record). ``progress``: a progress bar
    (tqdm) over the sampler steps, or a callable ``progress(method, done, total)``.

    Returns a :class:`Reconstruction` for one method, a dict of them by method name for
    several. Runs on ``y``'s device, with the GIL released. The model folder is read and its
    network built once per process and device (the last 4 models are kept; a folder whose
    ``config.json`` or ``model.safetensors`` changed is read again), so calling this once per
    slice does not reload the model.
    """
    if isinstance(task, Operator):
        op = task
        if task_name is None:
            task_name = _TASK_OF_OPERATOR.get(op.name)
        if task_name is None:
            raise ValueError(
                f"task_name: name the task whose methods and published settings apply to the "
                f"{op.name} operator (one of {', '.join(TASKS)})"
            )
    elif isinstance(task, Task):
        op = None
        if task_name is not None and task_name != task.name:
            raise ValueError(f"task_name {task_name!r}: the task is {task.name!r}")
    else:
        raise TypeError(
            f"task: expected a scoreinv.Task or a scoreinv.ops.Operator, got {type(task).__name__}"
        )
    unknown = set(score_settings) - set(_SCORE_FIELDS)
    if unknown:
        raise TypeError(
            f"reconstruct: unknown settings {sorted(unknown)}; known: {sorted(_SCORE_FIELDS)}"
        )
    methods = [m.strip() for m in method.split(",")] if isinstance(method, str) else list(method)
    if isinstance(model, Model):
        model = model.path
    settings = {"samples": _positive_int("samples", samples) or 1}
    if model is not None:
        path = os.fspath(model)
        if not os.path.isdir(path):
            raise FileNotFoundError(
                f"model directory {path} does not exist (expected a folder with config.json and "
                "model.safetensors)"
            )
        settings["model"] = path
    if steps is not None:
        settings["steps"] = _positive_int("steps", steps)
    for k, v in score_settings.items():
        if v is not None:
            settings[_SCORE_FIELDS[k]] = v
    t, back = as_tensor(y, "reconstruct: y")
    real_dtype_of(t, "reconstruct: y")
    if op is None:
        out_shape = task._t.operator(device_name(t.device)).output_shape
    else:
        out_shape = op.output_shape
    single = t.dim() == len(out_shape)
    if single:
        t = t.unsqueeze(0)
    args = (
        t,
        methods,
        json.dumps(settings),
        tv_lambda,
        _positive_int("tv_iters", tv_iters),
        int(seed),
        bool(normalise),
    )
    bar, callback = _progress(progress)
    try:
        if op is None:
            runs, notes = task._t.reconstruct(*args, callback)
        else:
            rust = op._rust(torch.float32, t.device)
            runs, notes = _scoreinv.reconstruct_operator(rust, task_name, *args, callback)
    finally:
        if bar is not None:
            bar.close()
    for n in notes:
        _log.info(n)
    out = {}
    for name, mean, std, seconds, nfe, settings in runs:
        if single:
            mean = mean.squeeze(0)
            std = None if std is None else std.squeeze(0)
        ran = None if settings is None else json.loads(settings)
        out[name] = Reconstruction(back(mean), back(std), name, seconds, nfe, ran)
    if len(out) == 1 and isinstance(method, str) and "," not in method:
        return next(iter(out.values()))
    return out


def _progress(progress):
    """``(bar, callback)`` for ``progress``: False, True (tqdm) or a callable."""
    if progress is False or progress is None:
        return None, None
    if callable(progress):
        return None, progress
    from tqdm.auto import tqdm

    state = {"bar": None, "method": None}

    def callback(method, done, total):
        if state["method"] != method:
            if state["bar"] is not None:
                state["bar"].close()
            state["bar"] = tqdm(total=total, desc=method, unit="step")
            state["method"] = method
        state["bar"].n = done
        state["bar"].refresh()

    class _Closer:
        def close(self):
            if state["bar"] is not None:
                state["bar"].close()

    return _Closer(), callback
