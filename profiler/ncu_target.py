"""The process Nsight Compute profiles: warm a model up, then one forward in a capture range.

Run by :mod:`strait_sim.profiler.measure_utilization` as
``ncu --profile-from-start off ... python -m strait_sim.profiler.ncu_target MODEL BATCH
PRECISION [MODEL_FILE...]``; only the forward between ``cudaProfilerStart`` and
``cudaProfilerStop`` is measured.
"""

from __future__ import annotations

import sys

import torch

from strait_sim.profiler.zoo import PRECISIONS, model_registry


def main(argv: list[str]) -> int:
    model, batch, precision, *files = argv
    spec = model_registry(files)[model]
    module = spec.build().to("cuda", PRECISIONS[precision])
    x = spec.make_input(int(batch), precision, torch.Generator().manual_seed(0)).to("cuda")
    with torch.inference_mode():
        for _ in range(3):
            module(x)
        torch.cuda.synchronize()
        torch.cuda.profiler.start()
        module(x)
        torch.cuda.synchronize()
        torch.cuda.profiler.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
