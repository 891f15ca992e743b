"""One trainer for every experiment (``attnlab train``, ``attnlab sweep``)."""

from .config import TrainConfig, apply_overrides, load_file, make_config
from .loop import evaluate, load_trained, train
from .memo import RunMemo
