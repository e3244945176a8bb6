#!/usr/bin/env python3
"""Projects data-parallel step time and scaling efficiency to more ranks, from one machine's
measurements (bench/distributed.sh) and a ring-allreduce cost model. Prints a markdown table.

  python3 bench/project_scaling.py --step-ms 150 --params 680000 --overlap 0.4 --backward-share 0.6

The model (docs/distributed.md):
- one rank per machine like the measured one; its step on the recipe's batch b takes step_ms (1
  rank x all its cores), of which backward_share is backward (the time reductions can hide in);
- a ring allreduce of S bytes over N ranks sends 2 (N-1)/N S bytes per rank and takes 2 (N-1)
  latency hops: t = 2 (N-1)/N S / bandwidth + 2 (N-1) latency, per bucket for the latency;
- the part `overlap` of the communication measured hidden behind backward here stays hidden, up to
  the backward time; the rest adds to the step;
- weak scaling: every rank keeps batch b (the global batch grows N-fold); efficiency is the
  one-machine step over the N-rank step;
- strong scaling: the global batch stays b, each rank computes b / N rows at the same cost per row
  (optimistic: small per-rank batches use the cores less well); efficiency is
  step_ms / (N x the N-rank step).
"""
import argparse

LINKS = [("10 Gbit/s Ethernet (TCP, 15 us a hop)", 10e9 / 8, 15e-6), ("100 Gbit/s InfiniBand (RDMA, 2 us a hop)", 100e9 / 8, 2e-6)]


def allreduce_s(nbytes, ranks, bandwidth, latency, buckets):
    if ranks == 1:
        return 0.0
    return 2 * (ranks - 1) / ranks * nbytes / bandwidth + 2 * (ranks - 1) * latency * buckets


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--step-ms", type=float, required=True, help="one machine's step on the recipe's batch (ms)")
    ap.add_argument("--params", type=int, required=True, help="float32 parameters (gradient values summed)")
    ap.add_argument("--overlap", type=float, required=True, help="share of the allreduce hidden behind backward, measured")
    ap.add_argument("--backward-share", type=float, default=0.6, help="share of the step that is backward")
    ap.add_argument("--buckets", type=int, default=1, help="allreduces per step")
    ap.add_argument("--ranks", type=int, nargs="+", default=[8, 64])
    args = ap.parse_args()
    step = args.step_ms / 1e3
    nbytes = 4 * args.params
    print(f"Gradients: {nbytes / 1e6:.2f} MB in {args.buckets} bucket(s); one machine's step {args.step_ms:.1f} ms, "
          f"{100 * args.backward_share:.0f}% of it backward; overlap {100 * args.overlap:.0f}%.\n")
    print("| link | ranks | allreduce | weak: step | weak: efficiency | strong: step | strong: efficiency |")
    print("|---|---|---|---|---|---|---|")
    for name, bandwidth, latency in LINKS:
        for n in args.ranks:
            comm = allreduce_s(nbytes, n, bandwidth, latency, args.buckets)
            weak_hidden = min(args.overlap * comm, args.backward_share * step)
            weak = step + comm - weak_hidden
            strong_compute = step / n
            strong_hidden = min(args.overlap * comm, args.backward_share * strong_compute)
            strong = strong_compute + comm - strong_hidden
            print(f"| {name} | {n} | {1e3 * comm:.2f} ms | {1e3 * weak:.1f} ms | {100 * step / weak:.0f}% "
                  f"| {1e3 * strong:.2f} ms | {100 * step / (n * strong):.0f}% |")


if __name__ == "__main__":
    main()
