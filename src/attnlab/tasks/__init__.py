"""Tasks: configs with ``build(seed) -> TaskData`` (MQAR, Markov chains, positional tasks, real text)."""

from .base import IGNORE, TaskData
from .markov import Markov
from .mqar import MQAR, SMALL_MQAR, multiquery_ar
from .positional import Positional
from .text import Text

TASKS = {"mqar": MQAR, "markov": Markov, "positional": Positional, "text": Text}
