"""The PyTorch twin of a Runestone Bible translation run: the same model (torch.nn.TransformerEncoder
and TransformerDecoder layers, built by tests/parity/runestone_torch.py from the run's checkpoint),
the same verse pairs and split (the run's cache file, text/bible.cpp's books), the same SentencePiece
models (from the checkpoint, through python3-sentencepiece), the same batches' shape (length-bucketed,
data.batch_size verses), steps, optimizer, schedule, clipping, label smoothing and decoding. Only the
initial weights and the order of the batches differ (PyTorch draws its own).

    /usr/bin/python3 bench/torch_bible.py runs/en_es/checkpoints/best.h5 [--out runs/en_es-torch]

It trains with OMP_NUM_THREADS threads (default 2), prints progress, and writes into --out:
log.jsonl (step, loss, lr, elapsed_s), test.hyp and test.ref (the test split's translations by beam
search and the references, one verse per line), and summary.json (training seconds, steps). Then
`build/rune score OUT/test.hyp OUT/test.ref` scores them with Runestone's sacreBLEU code, as
`rune eval` scores Runestone's own. Needs Debian's python3-torch, python3-h5py, python3-sentencepiece.
"""
import argparse
import json
import math
import os
import random
import subprocess
import sys
import time
import tomllib

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "parity"))
import runestone_torch as rt  # noqa: E402

# text/bible.cpp's fixed split by whole books (bible_split); every other book is training
VAL_BOOKS, TEST_BOOKS = {"Josh", "Rom"}, {"Acts"}
BUCKET_BATCHES = 64  # batches sorted by length together, as the translation task's prepare_epoch


def read_cache(path):
    """The verse pairs of a Bible cache file (text/bible.hpp): (book, source, target) per line."""
    pairs = []
    with open(path, encoding="utf-8") as f:
        header = f.readline()
        if not header.startswith("rune-bible-cache"):
            raise SystemExit(f"{path}: not a Runestone Bible cache (no header line)")
        for line in f:
            book, _chapter, _verse, source, target = line.rstrip("\n").split("\t")[:5]
            pairs.append((book, source, target))
    return pairs


def setting(cfg, key, default):
    section, name = key.split(".")
    return cfg.get(section, {}).get(name, default)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint", help="a checkpoint of the Runestone run (its config, architecture, SentencePiece models)")
    ap.add_argument("--out", help="folder for the results (default: the run folder's name + '-torch' beside it)")
    ap.add_argument("--rune", default=os.path.join(HERE, "..", "build", "rune"), help="the rune binary, for scoring")
    ap.add_argument("--max-steps", type=int, default=0,
                    help="stop after this many steps (the schedule still spans the whole run): a timing of the "
                         "first steps, without the test translations")
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    torch.manual_seed(0)
    random.seed(0)

    ckpt = rt.read(args.checkpoint)
    cfg, a = tomllib.loads(ckpt.config), ckpt.arch
    run_dir = os.path.dirname(os.path.dirname(os.path.abspath(args.checkpoint)))
    out = args.out or run_dir + "-torch"
    os.makedirs(out, exist_ok=True)
    if a["tokenization"] != "sentencepiece":
        raise SystemExit(f"{args.checkpoint}: tokenization {a['tokenization']!r}; this twin reads sentencepiece runs")
    limit = a["max_source_tokens"]  # max_len - 1 tokens of each side, then <eos>

    def ids(text, side):
        return rt.token_ids(text, ckpt, side, limit)

    # the run's data.cache, relative to where rune ran (run this from the same folder)
    pairs = read_cache(setting(cfg, "data.cache", "data/bible/engWEB2015eb-spaRV1909eb.tsv"))
    train = [(ids(s, "source"), ids(t, "target")) for b, s, t in pairs if b not in VAL_BOOKS | TEST_BOOKS]
    test = [(s, t) for b, s, t in pairs if b in TEST_BOOKS]
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads; {len(train)} training pairs, "
          f"{len(test)} test pairs", flush=True)

    model = rt.Seq2Seq(a, rt.subwords(ckpt, "source").get_piece_size(), rt.subwords(ckpt, "target").get_piece_size())
    dropout = setting(cfg, "model.dropout", 0.1)
    for m in model.modules():  # runestone_torch builds for inference: dropout back on
        if isinstance(m, nn.Dropout):
            m.p = dropout
        elif isinstance(m, nn.MultiheadAttention):
            m.dropout = dropout
    for name, p in model.named_parameters():  # nn.Transformer's own initialisation
        if p.dim() > 1:
            nn.init.xavier_uniform_(p)
    # the embeddings as nn/seq2seq.cpp draws them (model.embedding_init); their pad rows zero
    with torch.no_grad():
        for e in (model.src_embed, model.tgt_embed):
            if setting(cfg, "model.embedding_init", "normal") == "normal":
                nn.init.normal_(e.weight, 0.0, a["d_model"] ** -0.5)
            e.weight[a["pad_id"]] = 0
    model.train()

    batch = setting(cfg, "data.batch_size", 64)
    per_epoch = (len(train) + batch - 1) // batch
    total = setting(cfg, "train.epochs", 10) * per_epoch
    warmup = setting(cfg, "train.warmup_steps", min(100, total // 10))
    min_factor = setting(cfg, "train.min_lr_factor", 0.0)
    lr, clip = setting(cfg, "train.lr", 1e-3), setting(cfg, "train.clip_norm", 1.0)
    smoothing, pad, bos, eos = setting(cfg, "train.label_smoothing", 0.1), a["pad_id"], a["bos_id"], a["eos_id"]
    # Runestone's default no-decay patterns: "*.bias", "*_bias" (in_proj_bias), "*norm*", "*embed*"
    def undecayed(n):
        return n.endswith("bias") or "norm" in n or "embed" in n
    no_decay = [p for n, p in model.named_parameters() if undecayed(n)]
    decay = [p for n, p in model.named_parameters() if not undecayed(n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": setting(cfg, "train.weight_decay", 0.01)},
                             {"params": no_decay, "weight_decay": 0.0}], lr=lr,
                            betas=(setting(cfg, "train.beta1", 0.9), setting(cfg, "train.beta2", 0.98)),
                            eps=setting(cfg, "train.eps", 1e-9))

    def factor(step):  # optim/schedule.cpp's warmup_cosine
        if step < warmup:
            return (step + 1) / warmup
        p = min(max((step + 1 - warmup) / (total - warmup), 0.0), 1.0)
        return min_factor + (1 - min_factor) * 0.5 * (1 + math.cos(math.pi * p))

    def tensors(chunk):
        S = max(len(s) for s, _ in chunk) + 1
        T = max(len(t) for _, t in chunk) + 1
        src = torch.full((len(chunk), S), pad, dtype=torch.long)
        tin = torch.full((len(chunk), T), pad, dtype=torch.long)
        tout = torch.full((len(chunk), T), pad, dtype=torch.long)
        for i, (s, t) in enumerate(chunk):
            src[i, : len(s) + 1] = torch.tensor(s + [eos])
            tin[i, : len(t) + 1] = torch.tensor([bos] + t)
            tout[i, : len(t) + 1] = torch.tensor(t + [eos])
        return src, tin, tout

    def epoch_batches():
        order = train[:]
        random.shuffle(order)
        chunk = batch * BUCKET_BATCHES
        for at in range(0, len(order), chunk):
            order[at:at + chunk] = sorted(order[at:at + chunk], key=lambda p: len(p[0]))
        batches = [order[at:at + batch] for at in range(0, len(order), batch)]
        random.shuffle(batches)
        return batches

    log = open(os.path.join(out, "log.jsonl"), "w")
    log_every = setting(cfg, "train.log_every", 10)
    t0, step = time.perf_counter(), 0
    stop = min(total, args.max_steps) if args.max_steps > 0 else total
    while step < stop:
        for chunk in epoch_batches():
            if step == stop:
                break
            for g in opt.param_groups:
                g["lr"] = lr * factor(step)
            src, tin, tout = tensors(chunk)
            logits = model(src, tin)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tout.reshape(-1), ignore_index=pad,
                                   label_smoothing=smoothing)
            loss.backward()
            if clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), clip)
            opt.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            if step % log_every == 0 or step == stop:
                elapsed = time.perf_counter() - t0
                log.write(json.dumps({"step": step, "loss": loss.item(), "lr": lr * factor(step - 1),
                                      "elapsed_s": elapsed}) + "\n")
                log.flush()
                left = elapsed / step * (total - step)
                print(f"step {step}/{total} loss {loss.item():.4f} ({elapsed:.0f} s, {left:.0f} s left)", flush=True)
    train_s = time.perf_counter() - t0
    log.close()
    if stop < total:
        print(f"stopped after {stop} of {total} steps: {train_s:.1f} s, {train_s / stop:.3f} s a step", flush=True)
        return

    model.eval()
    beam, alpha = setting(cfg, "decode.beam", 1), setting(cfg, "decode.length_penalty", 0.6)
    t1 = time.perf_counter()
    hyps = [rt.detokenize(h, ckpt) for h in decode(model, [ids(s, "source") for s, _ in test], a, beam, alpha)]
    decode_s = time.perf_counter() - t1
    with open(os.path.join(out, "test.hyp"), "w", encoding="utf-8") as f:
        f.writelines(h + "\n" for h in hyps)
    with open(os.path.join(out, "test.ref"), "w", encoding="utf-8") as f:
        f.writelines(t + "\n" for _, t in test)
    summary = {"train_seconds": train_s, "steps": total, "decode_seconds": decode_s, "beam": beam,
               "threads": torch.get_num_threads(), "torch": torch.__version__}
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(f"trained {total} steps in {train_s:.0f} s; decoded the test split in {decode_s:.0f} s", flush=True)
    if os.path.exists(args.rune):
        subprocess.run([args.rune, "score", os.path.join(out, "test.hyp"), os.path.join(out, "test.ref")], check=True)


@torch.no_grad()
def decode(model, sources, a, beam, alpha, chunk=64):
    """Beam search as nn/seq2seq.cpp's beam_search (GNMT length penalty ((5 + len) / 6)^alpha, 2K
    candidates, a hypothesis ends at <eos> or max_decode_steps), without a cache: nn.Transformer
    has none, so the decoder re-reads the prefix at every step. beam = 1 is greedy."""
    out = []
    pad, bos, eos, steps = a["pad_id"], a["bos_id"], a["eos_id"], a["max_decode_steps"]
    for at in range(0, len(sources), chunk):
        part = sources[at:at + chunk]
        S = max(len(s) for s in part) + 1
        src = torch.full((len(part), S), pad, dtype=torch.long)
        for i, s in enumerate(part):
            src[i, : len(s) + 1] = torch.tensor(s + [eos])
        memory, mask = model.encode(src)
        B, K = len(part), beam
        memory, mask = memory.repeat_interleave(K, 0), mask.repeat_interleave(K, 0)
        seqs = [[] for _ in range(B * K)]
        score = torch.full((B * K,), -math.inf, dtype=torch.float64)
        score[::K] = 0
        done = [[] for _ in range(B)]
        finished = [False] * B
        for t in range(steps):
            prefix = torch.tensor([[bos] + s for s in seqs])
            logp = torch.log_softmax(model.decode(prefix, memory, mask)[:, -1], -1).double()
            V = logp.shape[1]
            next_seqs, next_score = [[] for _ in range(B * K)], torch.full((B * K,), -math.inf, dtype=torch.float64)
            for b in range(B):
                if finished[b]:
                    continue
                cand = (score[b * K:(b + 1) * K, None] + logp[b * K:(b + 1) * K]).reshape(-1)
                top = torch.topk(cand, min(2 * K, cand.numel()))
                filled = 0
                for value, index in zip(top.values.tolist(), top.indices.tolist()):
                    if value == -math.inf or filled == K:
                        break
                    k, v = divmod(index, V)
                    seq = seqs[b * K + k] + [v]
                    if v == eos or t + 1 == steps:
                        done[b].append((value / ((5 + len(seq)) / 6) ** alpha, seq))
                        continue
                    next_seqs[b * K + filled], next_score[b * K + filled] = seq, value
                    filled += 1
                best_live = next_score[b * K:(b + 1) * K].max().item()
                best_done = max((d[0] for d in done[b]), default=-math.inf)
                # no live beam can beat a finished one: the penalty only grows with length when alpha >= 0
                if filled == 0 or (done[b] and best_done >= best_live / ((5 + steps) / 6) ** alpha):
                    finished[b] = True
            seqs, score = [s if s else [pad] * (t + 1) for s in next_seqs], next_score
            if all(finished):
                break
        for b in range(B):
            best = max(done[b], key=lambda d: d[0])[1] if done[b] else []
            out.append([i for i in best if i not in (eos, pad)])
    return out


if __name__ == "__main__":
    main()
