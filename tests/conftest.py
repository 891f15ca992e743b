import os

import torch
from hypothesis import settings

# Two cores: keep torch from oversubscribing them, and keep hypothesis runs small but real.
torch.set_num_threads(min(2, os.cpu_count() or 1))
settings.register_profile("ci", max_examples=25, deadline=None, derandomize=True)
settings.register_profile("dev", max_examples=10, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
