"""The cases of bench_attention.cpp with torch.nn.MultiheadAttention (batch_first): same names,
shapes, FLOP model and output format ('#' comments, then case, median seconds, rate, unit).

Decoding: torch.nn.MultiheadAttention has no KV cache, so the cached case is the usual hand-written
one: the new token's q, k, v from the module's own weights, keys and values appended with
torch.cat, attention by torch.matmul and softmax, then out_proj. The uncached case runs the module
over the whole prefix with a causal mask and keeps the last row.

Run by bench/run.sh with Debian's python3-torch at 2 threads (see torch_ops.py for the BLAS check).
"""
import sys

import torch
import torch.nn.functional as F

from timing import median_seconds, report  # bench/timing.py, beside this script

torch.set_num_threads(2)
torch.manual_seed(0)


def causal_mask(t):
    return torch.triu(torch.ones(t, t, dtype=torch.bool), 1)  # True = not allowed


def bench_training(causal, backward):
    B, T, C, H = 32, 64, 128, 8
    mha = torch.nn.MultiheadAttention(C, H, batch_first=True)
    x, gy = torch.randn(B, T, C), torch.randn(B, T, C)
    mask = causal_mask(T) if causal else None
    flops = (4.0 * 2 * B * T * C * C + 2.0 * 2 * B * T * T * C) * (3.0 if backward else 1.0)
    if backward:
        def run():
            mha.zero_grad(set_to_none=True)
            xi = x.detach().requires_grad_()
            out, _ = mha(xi, xi, xi, attn_mask=mask, need_weights=False)
            out.backward(gy)
        s = median_seconds(run)
    else:
        with torch.no_grad():
            s = median_seconds(lambda: mha(x, x, x, attn_mask=mask, need_weights=False))
    name = f"mha {'causal' if causal else 'self'} {'fwd+bwd' if backward else 'fwd'} (32,64,128) h8"
    report(name, s, flops / s * 1e-9, "GFLOP/s", flops, rss=not causal and backward)


def bench_decode(prefix, cached):
    B, C, H, steps = 4, 128, 8, 8
    D = C // H
    mha = torch.nn.MultiheadAttention(C, H, batch_first=True).eval()
    x = torch.randn(B, prefix + steps, C)
    w, b = mha.in_proj_weight, mha.in_proj_bias

    def heads(t):  # (B, T, C) -> (B, H, T, D)
        return t.view(B, -1, H, D).transpose(1, 2)

    with torch.no_grad():
        _, k0, v0 = F.linear(x[:, :prefix], w, b).chunk(3, dim=-1)
        k0, v0 = heads(k0), heads(v0)
        if cached:
            def run():
                k, v = k0, v0
                for t in range(prefix, prefix + steps):
                    q, kn, vn = F.linear(x[:, t:t + 1], w, b).chunk(3, dim=-1)
                    k, v = torch.cat([k, heads(kn)], 2), torch.cat([v, heads(vn)], 2)
                    att = torch.softmax(heads(q) @ k.transpose(-1, -2) / D ** 0.5, -1)
                    mha.out_proj((att @ v).transpose(1, 2).reshape(B, 1, C))
        else:
            def run():
                for t in range(prefix, prefix + steps):
                    seen = x[:, :t + 1]
                    out, _ = mha(seen, seen, seen, attn_mask=causal_mask(t + 1), need_weights=False)
                    out[:, t:t + 1]
        s = median_seconds(run) / steps
    report(f"decode step after {prefix}, {'kv cache' if cached else 'no cache'}", s, B / s, "tokens/s")


def main():
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)
    bench_training(False, True)
    bench_training(True, True)
    bench_training(False, False)
    for prefix in (32, 128, 512):
        bench_decode(prefix, True)
        bench_decode(prefix, False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
