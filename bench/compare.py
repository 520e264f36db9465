#!/usr/bin/python3
"""compare.py — the performance issue's workloads in tessera and in PyTorch, side by side.

Workloads (float32, 6 actions, batch 32 unless stated; bench/bench_workloads.c
describes tessera's side and its ceiling):

  nature_dqn                      Nature CNN (SAME) DQN update: target forward on s',
                                  online forward + backward on s, MSE TD loss, Adam
  nature_act                      the same network acting at batch 1: no-grad forward + argmax
  impala_softmoe4                 IMPALA + Soft MoE (4 experts, per-conv tokens, 31 slots)
  impala_tokenized_single_expert  IMPALA + Soft MoE with one expert of 2048
  impala_flatten                  IMPALA + flatten -> 512 -> ReLU
  nature_hlgauss                  Nature CNN + HL-Gauss (51 bins over [-10, 10]), Adam
  minatar_dqn                     MinAtar DQN preset (conv 16@3x3 VALID on 10x10x4, dense
                                  128), Huber, centred RMSProp (lr 2.5e-4, alpha 0.95, eps 0.01)
  minatar_e2e                     the MinAtar Breakout DQN preset trained by tessera's runner:
                                  environment steps/s with acting, replay and an update per
                                  step (tessera only: there is no PyTorch twin of the loop)

The IMPALA networks and the Soft MoE are compare_networks.py's (imported, with
its checks: batched-matmul Soft MoE equals the definition, the native SAME
max-pool equals the F.pad one). Adam is Dopamine's (lr 6.25e-5, eps 1.5e-4,
betas 0.9 / 0.999) on both sides.

Every cell (workload, threads) alternates, round after round, one tessera
process (bench_workloads --json, one workload and thread count) and one
PyTorch process per variant (this script with --worker), so a change of
machine load hits both and each process's peak RSS is its own workload's.
Before each cell the script waits (up to --quiet-wait s) for other processes
to leave the CPUs and records the share of the CPUs they used during the cell
(compare_networks.py's method). The table gives the median over rounds of each
side's per-round median over the rounds where others used at most
--max-foreign-load of the CPUs (the quietest round if none was that quiet).
--table-from FILE prints the table again from a --json-out file.

PyTorch is given its strongest Debian configuration:
  * Debian's python3-torch imported by /usr/bin/python3;
  * OpenBLAS from libopenblas0-openmp with OPENBLAS_CORETYPE unset (its own
    detection: AVX-512 kernels on an AVX-512 CPU, Haswell kernels on an AVX2
    one; forcing SkylakeX on a CPU without AVX-512 would fault), or --openblas-
    coretype NAME;
  * libtcmalloc_minimal.so.4 preloaded (--no-tcmalloc to leave it out);
  * OMP_NUM_THREADS, OPENBLAS_NUM_THREADS and torch.set_num_threads all = T;
  * flush-to-zero on (torch.set_flush_denormal), as tessera's runs have it;
  * several variants timed in every round and the fastest (median over
    rounds) reported: memory format contiguous or channels_last, times the
    optimizer's for-loop or foreach implementation (acting: the memory format
    only); parameter gradients set to None before each step.

FLOPs: a step counts 4x the forward (target forward + online forward +
backward as 2x forward), acting 1x, from tessera's layer summary; the peak is
bench_workloads' FMA loop on T threads.

  /usr/bin/python3 bench/compare.py [--bench PATH] [--threads 1,2] [--rounds N]
      [--reps N] [--workloads LIST] [--e2e-steps N] [--no-tcmalloc]
      [--openblas-coretype NAME|unset] [--json-out FILE]
"""
import argparse
import ctypes
import gc
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH_DIR)
sys.path.insert(0, BENCH_DIR)
import compare_networks as cn  # noqa: E402  (no torch import at module level)

WORKLOADS = ["nature_dqn", "nature_act", "impala_softmoe4", "impala_tokenized_single_expert",
             "impala_flatten", "nature_hlgauss", "minatar_dqn", "minatar_e2e"]
TESSERA_ONLY = {"minatar_e2e"}
NUM_ACTIONS = 6
GAMMA = 0.99
TERMINAL_FRACTION = 0.03
WARMUP_CALLS = 5  # bench_workloads.c's WARMUP_STEPS (times the inner calls)
ADAM = dict(lr=6.25e-5, betas=(0.9, 0.999), eps=1.5e-4)
RMSPROP = dict(lr=2.5e-4, alpha=0.95, eps=0.01, centered=True, momentum=0)
HLGAUSS = dict(bins=51, vmin=-10.0, vmax=10.0, sigma_ratio=0.75)


def spec(name):
    """Input (H, W, C), scale, batch, calls per timed sample, loss, optimizer."""
    atari = dict(input=(84, 84, 4), scale=1.0 / 255, batch=32, inner=1, loss="mse", opt="adam")
    specs = {
        "nature_dqn": dict(atari, net="nature"),
        "nature_act": dict(atari, net="nature", batch=1, inner=20, loss=None),
        "impala_softmoe4": dict(atari, net="impala_softmoe4"),
        "impala_tokenized_single_expert": dict(atari, net="impala_tokenized_single_expert"),
        "impala_flatten": dict(atari, net="impala_flatten"),
        "nature_hlgauss": dict(atari, net="nature", loss="hlgauss"),
        "minatar_dqn": dict(input=(10, 10, 4), scale=1.0, batch=32, inner=10, loss="huber",
                            opt="rmsprop", net="minatar"),
    }
    return specs[name]


def variants(name):
    if name == "nature_act":
        return ["contiguous", "channels_last"]
    return [f"{fmt}/{impl}" for fmt in ("contiguous", "channels_last")
            for impl in ("forloop", "foreach")]


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bench", default="build/bench/bench_workloads",
                   help="bench_workloads binary (relative paths from the repository root)")
    p.add_argument("--threads", default="1,2", help="thread counts, e.g. 1,2")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds per cell")
    p.add_argument("--reps", type=int, default=15, help="timed samples per measurement (median)")
    p.add_argument("--workloads", default=",".join(WORKLOADS), help="comma-separated")
    p.add_argument("--e2e-steps", type=int, default=10000,
                   help="agent steps per runner iteration of minatar_e2e")
    p.add_argument("--no-tcmalloc", action="store_true", help="do not preload tcmalloc for torch")
    p.add_argument("--openblas-coretype", default="unset",
                   help="OPENBLAS_CORETYPE for the torch processes ('unset' removes it)")
    cn.add_load_arguments(p)
    p.add_argument("--table-from", help="print the report of an earlier --json-out file "
                   "(give the --reps and --rounds it ran with if the file does not record them)")
    # The PyTorch side of one measurement (run by the driver itself).
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--variant", help=argparse.SUPPRESS)
    p.add_argument("--worker-threads", type=int, help=argparse.SUPPRESS)
    return p.parse_args()


# ------------------------------------------------------------------- PyTorch

def build_net(torch, name, channels_last, num_atoms=1):
    nn, F = torch.nn, torch.nn.functional

    def dense(fan_in, fan_out):
        layer = nn.Linear(fan_in, fan_out)
        nn.init.xavier_uniform_(layer.weight)
        nn.init.zeros_(layer.bias)
        return layer

    def conv(c_in, c_out, k, stride=1, padding=0):
        layer = nn.Conv2d(c_in, c_out, k, stride=stride, padding=padding)
        nn.init.xavier_uniform_(layer.weight)
        nn.init.zeros_(layer.bias)
        return layer

    def flatten(x):
        """Each memory format's free order: NCHW (c, h, w), NHWC (h, w, c); the
        same network up to a fixed permutation of the dense weights."""
        return x.permute(0, 2, 3, 1).flatten(1) if channels_last else x.flatten(1)

    class Nature(nn.Module):
        """Dopamine's NatureDQNNetwork with Flax's SAME padding: 84 -> 21 (pad 2/2),
        21 -> 11 (pad 1/2: F.pad, Conv2d pads symmetrically), 11 -> 11 (pad 1/1);
        (N, 4, 84, 84) -> (N, 64, 11, 11) -> 7744 -> 512 -> A (x K)."""

        def __init__(self):
            super().__init__()
            self.conv1 = conv(4, 32, 8, 4, padding=2)
            self.conv2 = conv(32, 64, 4, 2)
            self.conv3 = conv(64, 64, 3, 1, padding=1)
            self.hidden = dense(7744, 512)
            self.output = dense(512, NUM_ACTIONS * num_atoms)

        def forward(self, x):
            x = F.relu(self.conv1(x))
            x = F.relu(self.conv2(F.pad(x, (1, 2, 1, 2))))
            x = F.relu(self.conv3(x))
            return self.output(F.relu(self.hidden(flatten(x))))

    class MinAtar(nn.Module):
        """The MinAtar paper's DQN: conv 16@3x3 VALID (10x10x4 -> 8x8x16) -> 1024
        -> 128 -> A."""

        def __init__(self):
            super().__init__()
            self.conv = conv(4, 16, 3)
            self.hidden = dense(1024, 128)
            self.output = dense(128, NUM_ACTIONS)

        def forward(self, x):
            return self.output(F.relu(self.hidden(flatten(F.relu(self.conv(x))))))

    if name == "nature":
        net = Nature()
    elif name == "minatar":
        net = MinAtar()
    else:
        make, soft_moe, impala = cn.build_torch_networks(torch)
        cn.check_soft_moe(torch, soft_moe)
        cn.check_pools(torch, impala)
        net = make(name, channels_last, True)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    return net


def worker(args):
    """Times one PyTorch variant of one workload; prints one JSON line."""
    import torch
    threads = args.worker_threads
    torch.set_num_threads(threads)
    torch.set_flush_denormal(True)
    s = spec(args.worker)
    fmt, _, impl = args.variant.partition("/")
    channels_last = fmt == "channels_last"
    h, w, c = s["input"]
    n = s["batch"]
    torch.manual_seed(1)
    gen = torch.Generator().manual_seed(2)
    num_atoms = HLGAUSS["bins"] if s["loss"] == "hlgauss" else 1
    online = build_net(torch, s["net"], channels_last, num_atoms)
    params = list(online.parameters())

    def observations():
        if s["net"] == "minatar":
            nhwc = (torch.rand(n, h, w, c, generator=gen) < 0.1).to(torch.uint8)
        else:
            nhwc = torch.randint(0, 256, (n, h, w, c), dtype=torch.uint8, generator=gen)
        # channels_last: the NHWC bytes as they are; contiguous: an NCHW copy.
        return nhwc.permute(0, 3, 1, 2) if channels_last else nhwc.permute(0, 3, 1, 2).contiguous()

    obs, next_obs = observations(), observations()
    scale = s["scale"]

    def prep(x):
        return x.to(torch.float32).mul_(scale)

    if s["loss"] is None:
        def call():
            with torch.inference_mode():
                q = online(prep(obs))
                return int(q.argmax(1)[0])
    else:
        import copy
        target = copy.deepcopy(online)
        actions = torch.randint(0, NUM_ACTIONS, (n,), generator=gen)
        rewards = torch.randint(0, 2, (n,), generator=gen).to(torch.float32)
        dones = (torch.rand(n, generator=gen) < TERMINAL_FRACTION).to(torch.float32)
        foreach = impl == "foreach"
        if s["opt"] == "adam":
            opt = torch.optim.Adam(params, foreach=foreach, **ADAM)
        else:
            opt = torch.optim.RMSprop(params, foreach=foreach, **RMSPROP)
        if s["loss"] == "hlgauss":
            k, vmin, vmax = HLGAUSS["bins"], HLGAUSS["vmin"], HLGAUSS["vmax"]
            edges = torch.linspace(vmin, vmax, k + 1)
            centres = (edges[:-1] + edges[1:]) / 2
            sigma = HLGAUSS["sigma_ratio"] * (vmax - vmin) / k
            rows = torch.arange(n)

        def call():
            for p in params:
                p.grad = None
            with torch.no_grad():
                out_next = target(prep(next_obs))
                if s["loss"] == "hlgauss":
                    logits_next = out_next.view(n, NUM_ACTIONS, k)
                    q_next = (torch.softmax(logits_next, 2) * centres).sum(2)
                    y = rewards + GAMMA * (1 - dones) * q_next.max(1).values
                    cdf = torch.erf((edges - y.clamp(vmin, vmax)[:, None]) / (math.sqrt(2) * sigma))
                    probs = (cdf[:, 1:] - cdf[:, :-1]) / (cdf[:, -1:] - cdf[:, :1])
                else:
                    y = rewards + GAMMA * (1 - dones) * out_next.max(1).values
            out = online(prep(obs))
            if s["loss"] == "hlgauss":
                chosen = out.view(n, NUM_ACTIONS, k)[rows, actions]
                loss = -(probs * torch.log_softmax(chosen, 1)).sum(1).mean()
            else:
                chosen = out.gather(1, actions[:, None]).squeeze(1)
                if s["loss"] == "huber":
                    loss = torch.nn.functional.huber_loss(chosen, y, delta=1.0)
                else:
                    loss = ((chosen - y) ** 2).mean()
            loss.backward()
            opt.step()

    inner = s["inner"]
    for _ in range(WARMUP_CALLS * inner):
        call()
    samples = []
    gc.disable()
    for _ in range(args.reps):
        t0 = time.perf_counter()
        for _ in range(inner):
            call()
        samples.append((time.perf_counter() - t0) / inner)
    gc.enable()
    ms = 1e3 * statistics.median(samples)
    print(json.dumps(dict(
        workload=args.worker, variant=args.variant, threads=threads, ms=ms, per_second=1e3 / ms,
        params=sum(p.numel() for p in params),
        max_rss_kib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        config=torch_configuration(torch))))


def torch_configuration(torch):
    blas = cn.mapped_libraries("blas")
    corename = None
    for path in blas:
        try:
            lib = ctypes.CDLL(path)
            lib.openblas_get_corename.restype = ctypes.c_char_p
            corename = lib.openblas_get_corename().decode()
            break
        except (OSError, AttributeError):
            continue
    return dict(torch=torch.__version__, torch_file=torch.__file__, python=sys.executable,
                mkldnn=torch.backends.mkldnn.is_available(), blas=blas,
                openblas_corename=corename,
                openblas_coretype=os.environ.get("OPENBLAS_CORETYPE"),
                tcmalloc=cn.mapped_libraries("tcmalloc"),
                threads=torch.get_num_threads())


# -------------------------------------------------------------------- driver

def run_json(cmd, env):
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"compare: {' '.join(cmd)} failed ({proc.returncode}):\n"
                         f"{proc.stdout}{proc.stderr}")
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


def torch_environment(args, threads):
    env = dict(os.environ)
    for k in ("LD_PRELOAD",):
        env.pop(k, None)
    if not args.no_tcmalloc:
        env["LD_PRELOAD"] = cn.TCMALLOC
    coretype = cn.openblas_coretype(args.openblas_coretype)
    if coretype is None:
        env.pop("OPENBLAS_CORETYPE", None)
    else:
        env["OPENBLAS_CORETYPE"] = coretype
    env["OMP_NUM_THREADS"] = env["OPENBLAS_NUM_THREADS"] = str(threads)
    return env


def report(args, cells, measurements, peaks, replay, torch_config):
    """Prints the configuration lines that need the workers, the checks, the
    table and every measurement; returns the summary rows."""
    threads = sorted({t for _, t in cells})
    if torch_config:
        print(f"- PyTorch {torch_config['torch']} ({torch_config['torch_file']}), "
              f"oneDNN (mkldnn) {'on' if torch_config['mkldnn'] else 'off'}")
        print(f"- BLAS mapped: {', '.join(torch_config['blas']) or 'none'}; OpenBLAS core "
              f"{torch_config['openblas_corename']}; OPENBLAS_CORETYPE "
              f"{torch_config['openblas_coretype'] or '(unset)'}")
        print(f"- tcmalloc preloaded: {', '.join(torch_config['tcmalloc']) or 'no'}")
        print("- OMP_NUM_THREADS = OPENBLAS_NUM_THREADS = torch.set_num_threads = T; "
              "flush-to-zero on both sides")
    print(f"- median of {args.reps} samples after warm-up per measurement, {args.rounds} rounds; "
          f"rounds where other processes used more than {100 * args.max_foreign_load:.0f}% of "
          f"the CPUs are left out; a cell without such a round keeps only its quietest "
          f"(column 'rounds')\n")

    for row in replay:
        if "error" in row:
            print(f"Replay of {row['capacity']:,} 84x84x4 uint8 steps: {row['error']}")
        else:
            print(f"Replay of {row['capacity']:,} 84x84x4 uint8 steps: {row['bytes']:,} bytes, "
                  f"{row['ratio']:.3f}x its distinct frames ({row['distinct_frame_bytes']:,.0f} "
                  f"bytes); target at most 1.05x")
    print()
    print("| workload | T | oneDNN vs reference: losses / grads |")
    print("|---|---:|---|")
    for name, t in cells:
        first = measurements[(name, t)][0]["tessera"]
        if name not in TESSERA_ONLY and first["kind"] == "step":
            print(f"| {name} | {t} | {first['loss_rel_diff']:.2g} / {first['grad_rel_diff']:.2g} |")
    print()
    print("| workload | T | tessera /s | PyTorch /s | ratio | PyTorch variant | ceiling /s "
          "| tessera vs ceiling | tessera GFLOP/s (% peak) | PyTorch GFLOP/s (% peak) "
          "| peak RSS MiB tessera / PyTorch | rounds | others' CPU % |")
    print("|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    summary = []
    for name, t in cells:
        all_rows = measurements[(name, t)]
        rows = [row for row in all_rows if row["foreign_load"] <= args.max_foreign_load]
        rows = rows or [min(all_rows, key=lambda row: row["foreign_load"])]
        tess_ms = statistics.median(row["tessera"]["ms"] for row in rows)
        tess_rss = max(row["tessera"]["max_rss_kib"] for row in rows) / 1024
        loads = " ".join(f"{100 * row['foreign_load']:.0f}" for row in all_rows)
        peak = peaks[t]["gflops"]
        flops = rows[0]["tessera"]["step_flops"]
        entry = dict(workload=name, threads=t, tessera_ms=tess_ms, rounds=all_rows,
                     used_rounds=len(rows), tessera_rss_mib=tess_rss)
        if name in TESSERA_ONLY:
            print(f"| {name} | {t} | {1e3 / tess_ms:.0f} env steps | — | — | — | — | — | — | — "
                  f"| {tess_rss:.0f} / — | {len(rows)}/{len(all_rows)} | {loads} |")
            summary.append(entry)
            continue
        ceil_ms = statistics.median(row["tessera"]["ceiling_ms"] for row in rows)
        torch_ms = {v: statistics.median(row["torch"][v]["ms"] for row in rows)
                    for v in variants(name)}
        best = min(torch_ms, key=torch_ms.get)
        torch_rss = max(row["torch"][best]["max_rss_kib"] for row in rows) / 1024
        ratio = torch_ms[best] / tess_ms
        tess_gf, torch_gf = flops / tess_ms * 1e-6, flops / torch_ms[best] * 1e-6
        print(f"| {name} | {t} | {1e3 / tess_ms:.1f} | {1e3 / torch_ms[best]:.1f} | {ratio:.2f}x "
              f"| {best} | {1e3 / ceil_ms:.1f} | {100 * (tess_ms / ceil_ms - 1):+.0f}% "
              f"| {tess_gf:.1f} ({100 * tess_gf / peak:.0f}%) "
              f"| {torch_gf:.1f} ({100 * torch_gf / peak:.0f}%) "
              f"| {tess_rss:.0f} / {torch_rss:.0f} | {len(rows)}/{len(all_rows)} | {loads} |")
        entry.update(torch_ms=torch_ms, torch_variant=best, ratio=ratio, ceiling_ms=ceil_ms,
                     torch_rss_mib=torch_rss)
        summary.append(entry)
    print("\n'/s' is updates per second (nature_act: actions per second at batch 1, minatar_e2e: "
          "environment steps per second); ratio = PyTorch time / tessera time (above 1: tessera "
          "is faster); tessera vs ceiling = tessera's time over its ceiling's (the step's oneDNN "
          "compute primitives replayed back to back, then the optimizer step).\n")
    print("### Every measurement (ms per update / action / env step; one value per round)\n")
    print("| workload | T | tessera | tessera ceiling | PyTorch variants |")
    print("|---|---:|---|---|---|")
    for s in summary:
        rows = s["rounds"]
        cells_text = [" ".join(f"{row['tessera']['ms']:.3f}" for row in rows),
                      " ".join(f"{row['tessera']['ceiling_ms']:.3f}" for row in rows)
                      if s["workload"] not in TESSERA_ONLY else "—"]
        torch_text = "; ".join(f"{v} " + " ".join(f"{row['torch'][v]['ms']:.3f}" for row in rows)
                               for v in (rows[0]["torch"] or {}))
        print(f"| {s['workload']} | {s['threads']} | {cells_text[0]} | {cells_text[1]} "
              f"| {torch_text or '—'} |")
    return summary


def main():
    args = parse_args()
    if args.worker:
        worker(args)
        return
    if args.table_from:
        with open(args.table_from) as f:
            saved = json.load(f)
        cells = [(s["workload"], s["threads"]) for s in saved["results"]]
        measurements = {(s["workload"], s["threads"]): s["rounds"] for s in saved["results"]}
        peaks = {int(t): row for t, row in saved["peaks"].items()}
        args.reps = saved.get("reps", args.reps)
        args.rounds = saved.get("rounds", args.rounds)
        report(args, cells, measurements, peaks, saved["replay"], saved["torch"])
        return
    bench = cn.repo_path(args.bench)
    if not os.access(bench, os.X_OK):
        raise SystemExit(f"compare: {bench} is not an executable; build it "
                         f"(ninja -C build bench/bench_workloads) or pass --bench PATH")
    threads = [int(t) for t in args.threads.split(",")]
    names = args.workloads.split(",")
    for name in names:
        if name not in WORKLOADS:
            raise SystemExit(f"compare: unknown workload '{name}' (known: {', '.join(WORKLOADS)})")
    tess_env = dict(os.environ)
    tess_env.pop("LD_PRELOAD", None)
    me = [sys.executable, os.path.abspath(__file__)]

    flags = cn.cpu_flags()
    print("## Configuration\n")
    print(f"- CPU: {cn.cpu_model()}, {os.cpu_count()} logical CPUs, "
          f"{'AVX-512' if 'avx512f' in flags else 'AVX2 + FMA, no AVX-512' if 'avx2' in flags else 'no AVX2'}; "
          f"load average at start {cn.load_average()}")
    print(f"- tessera: {bench}; PyTorch: {sys.executable} (this script), one process per "
          f"variant and cell")
    start = time.time()
    extras = run_json([bench, "--json", "--workloads", "none", "--peak", "--replay-memory",
                       "--threads", args.threads, "--reps", "9"], tess_env)
    peaks = {row["threads"]: row for row in extras if row["workload"] == "fma_peak"}
    replay = [row for row in extras if row["workload"] == "replay_memory"]
    for t in threads:
        print(f"- FP32 peak, FMA loop ({peaks[t]['isa']}), {t} thread(s): "
              f"{peaks[t]['gflops']:.1f} GFLOP/s")
    sys.stdout.flush()

    cells = [(name, t) for name in names for t in threads]
    measurements = {cell: [] for cell in cells}
    torch_config = None
    for r in range(args.rounds):
        for name, t in cells:
            quiet = cn.wait_for_quiet(args.quiet_threshold, args.quiet_wait)
            before = cn.sample()
            cmd = [bench, "--json", "--workloads", name, "--threads", str(t), "--reps",
                   str(args.reps), "--e2e-steps", str(args.e2e_steps)]
            if r > 0:
                cmd.append("--skip-check")  # checked in the first round
            tess = run_json(cmd, tess_env)[0]
            row = {"round": r, "tessera": tess, "torch": {}, "foreign_load_before": quiet}
            if name not in TESSERA_ONLY:
                for v in variants(name):
                    out = run_json(me + ["--worker", name, "--variant", v, "--worker-threads",
                                         str(t), "--reps", str(args.reps)],
                                   torch_environment(args, t))[0]
                    row["torch"][v] = out
                    torch_config = torch_config or out["config"]
                    if out["params"] != tess["params"]:
                        raise SystemExit(f"compare: {name}: tessera has {tess['params']} "
                                         f"parameters, PyTorch {out['params']}")
            row["foreign_load"] = cn.foreign_load(before, cn.sample())
            measurements[(name, t)].append(row)
            print(f"round {r + 1}/{args.rounds} {name} T={t}: tessera {tess['ms']:.3f} ms; torch "
                  + ", ".join(f"{v} {o['ms']:.3f}" for v, o in row["torch"].items())
                  + f" ms; other processes {100 * row['foreign_load']:.0f}% of the CPUs",
                  file=sys.stderr, flush=True)

    summary = report(args, cells, measurements, peaks, replay, torch_config)
    print(f"\nload average at the end {cn.load_average()}; {time.time() - start:.0f} s")
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(dict(torch=torch_config, peaks=peaks, replay=replay, results=summary,
                           reps=args.reps, rounds=args.rounds), f, indent=1)


if __name__ == "__main__":
    main()
