"""This CPU's matrix-product rate on one thread, beside the no-grad read of `auxrnn bench` (Fig. 3's cost panel).

The read of an LSTM-128 over a 128-d embedding does 2 * 4H * (E + H) = 262,144 flops per example and step in
its matrix products. This prints the rate of a large product (the machine's practical peak) and of the read's own
shape, (128 x 128) @ (128 x 512), per precision, and, given a bench JSON, the rate each lstm-infer record reached.

    python scripts/arithmetic_rate.py [BENCH_JSON]
"""
from __future__ import annotations

import json
import sys
import time

import torch

READ_FLOPS = 2 * 4 * 128 * (128 + 128)  # per example and step


def rate(m: int, k: int, n: int, dtype: torch.dtype, repeat: int) -> float:
    a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
    for _ in range(3):
        a @ b
    t = time.perf_counter()
    for _ in range(repeat):
        a @ b
    return 2 * m * k * n * repeat / (time.perf_counter() - t) / 1e9


def main() -> None:
    torch.set_num_threads(1)
    print("one thread, GFLOP/s")
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        print(f"  {name}: 2048^3 product {rate(2048, 2048, 2048, dtype, 10):.1f}, "
              f"(128x128)@(128x512) {rate(128, 128, 512, dtype, 2000):.1f}")
    if len(sys.argv) > 1:
        for r in json.loads(open(sys.argv[1]).read()):
            if r["model"] == "lstm-infer" and r.get("step_ms"):
                gflops = READ_FLOPS * r["batch"] * r["T"] / (r["step_ms"] / 1000) / 1e9
                print(f"  lstm-infer T={r['T']} {r['precision']}: {gflops:.1f} GFLOP/s in its matrix products")


if __name__ == "__main__":
    main()
