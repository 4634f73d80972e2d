"""Run by Python at start-up in processes the fault-injection tests start (tests/checkpoint_faults.py)."""

import os
import sys
from pathlib import Path

if os.environ.get("CNNLAB_TEST_SLOW_CHECKPOINT") or os.environ.get("CNNLAB_TEST_KILL_CHECKPOINT"):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for checkpoint_faults
    import checkpoint_faults
    from cnnlab.train.loop import checkpoint

    checkpoint.WRITE_HOOKS.append(checkpoint_faults.inject)
    sys.path.pop(0)
