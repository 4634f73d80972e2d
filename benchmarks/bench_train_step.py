"""Train-step and forward speed of cnnlab vs PyTorch (default and channels_last).

Run with the BLAS settings of a real user (see docs/performance.md):

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_train_step.py
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_train_step.py --profile
"""

import sys

from cnnlab.cli.bench_cmd import main

if __name__ == "__main__":
    sys.exit(main())
