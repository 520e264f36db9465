#!/usr/bin/python3
"""compare_networks.py — tessera against PyTorch on whole networks, side by side.

The layers issue's benchmark: one training-style forward + backward (forward
with autograd, loss = mean of the Q-values of the taken actions, backward) at
batch 32 on uint8 84x84x4 observations scaled by 1/255 inside the step, for

  impala_softmoe4                 IMPALA + Soft MoE, 4 experts (hidden 512)
  impala_tokenized_single_expert  IMPALA + Soft MoE, 1 expert (hidden 2048)
  impala_flatten                  IMPALA + flatten -> 512 -> ReLU -> 6

tessera runs as a subprocess (bench_networks --json, one network and thread
count per call); PyTorch runs in this process with the same networks written
out below from components.md 1.1-1.5, the same warm-up (5 steps) and the same
median of N timed steps. For every network and thread count the two alternate,
round after round, so a change of machine load hits both; before each
(network, threads) cell the script waits (up to --quiet-wait s) for other
processes to leave the CPUs, and it records the share of the CPUs they used
during the cell. The table gives the median over rounds of each side's
per-round median over the rounds where others used at most 5% of the CPUs
(all rounds if none was that quiet), and the ratio is PyTorch ms / tessera ms
(above 1: tessera is faster).

PyTorch is given its strongest eager configuration on this machine:
  * four variants are timed in every round and the fastest (by median over
    rounds) is reported: memory format contiguous (NCHW) or channels_last,
    times the SAME max-pool done by its definition (F.pad with -inf to
    ceil(in/2) outputs, then a VALID pool: "pad") or by max_pool2d's own -inf
    padding plus ceil_mode for the extra end row ("native", no padded copy;
    checked equal to "pad" in outputs and gradients at start-up). Each format
    flattens in its own free order (NCHW: c,h,w; NHWC: h,w,c), the same network
    up to a fixed permutation of the dense weights;
  * OpenBLAS (Debian's openmp variant serves torch's linear and bmm, BLAS_INFO
    generic): by default (--openblas-coretype auto) OPENBLAS_CORETYPE=SkylakeX
    on a CPU with AVX-512 (on one such machine a session's environment had
    forced Haswell, AVX2 kernels, about 1.5x slower on these GEMMs; unset,
    OpenBLAS 0.3.21 picks Cooperlake, as fast as SkylakeX) and unset without
    it (SkylakeX kernels fault on an AVX2-only CPU; OpenBLAS then picks its
    own, Zen on AMD Zen 3);
  * parameter gradients are set to None before each step (zero_grad with
    set_to_none), so backward writes them fresh, as tessera does;
  * --tcmalloc re-executes this script with LD_PRELOAD=libtcmalloc_minimal.so.4
    (the preload is removed again for the tessera subprocess).

FLOPs (for GFLOP/s, both sides): tessera's forward count from its layer
summary, x3 for forward + backward (the usual convention).

  /usr/bin/python3 bench/compare_networks.py [--bench PATH] [--threads 1,2]
      [--rounds N] [--reps N] [--batch N] [--tcmalloc] [--openblas-coretype NAME|unset|auto]
      [--torch-variants LIST] [--json-out FILE] [CONFIG...]
"""
import argparse
import gc
import json
import math
import os
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TCMALLOC = "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"
DEFAULT_CONFIGS = [
    "configs/networks/impala_softmoe4.ini",
    "configs/networks/impala_tokenized_single_expert.ini",
    "configs/networks/impala_flatten.ini",
]
NUM_ACTIONS = 6
# PyTorch variants: memory format / how the SAME max-pool pads.
ALL_VARIANTS = ["contiguous/pad", "contiguous/native", "channels_last/pad", "channels_last/native"]
WARMUP_STEPS = 5  # bench_networks.c's WARMUP_STEPS


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("configs", nargs="*", help="network configs (default: the three of the issue)")
    p.add_argument("--bench", default="build/bench/bench_networks",
                   help="bench_networks binary (relative paths from the repository root)")
    p.add_argument("--threads", default="1,2", help="thread counts, e.g. 1,2")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds per cell")
    p.add_argument("--reps", type=int, default=15, help="timed steps per measurement (median)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--tcmalloc", action="store_true",
                   help="re-exec with LD_PRELOAD=" + TCMALLOC + " (torch side only)")
    p.add_argument("--openblas-coretype", default="auto",
                   help="OPENBLAS_CORETYPE for the torch process ('unset' removes it; 'auto', "
                        "the default: SkylakeX with AVX-512, else unset)")
    p.add_argument("--torch-variants", default=",".join(ALL_VARIANTS),
                   help="PyTorch variants timed in every round (the fastest is reported)")
    add_load_arguments(p)
    return p.parse_args()


def add_load_arguments(p):
    """Waiting for a quiet machine, judging rounds by their foreign load, and
    the JSON record: the options both comparison drivers share."""
    p.add_argument("--quiet-threshold", type=float, default=0.1,
                   help="before each cell, wait while other processes use more than this "
                        "fraction of the CPUs (default 0.1)")
    p.add_argument("--quiet-wait", type=float, default=60,
                   help="longest wait for quiet before a cell, seconds (default 60)")
    p.add_argument("--max-foreign-load", type=float, default=0.05,
                   help="leave rounds whose cell saw more foreign CPU use than this out of the "
                        "table when the cell has a quieter round (default 0.05)")
    p.add_argument("--json-out", help="also write every measurement to this file")


def cpu_flags():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    return set()


def openblas_coretype(choice):
    """The OPENBLAS_CORETYPE to set for a --openblas-coretype choice, or None
    to leave it unset."""
    if choice == "auto":
        return "SkylakeX" if "avx512f" in cpu_flags() else None
    return None if choice == "unset" else choice


def repo_path(path):
    return path if os.path.isabs(path) else os.path.join(REPO, path)


# ---------------------------------------------------------------- environment
# OpenBLAS reads OPENBLAS_CORETYPE when it is loaded, that is when torch is
# imported: the environment is settled before the import, and a tcmalloc
# preload needs a fresh process.

def prepare_environment(args):
    want_preload = args.tcmalloc and TCMALLOC not in os.environ.get("LD_PRELOAD", "")
    coretype = openblas_coretype(args.openblas_coretype)
    if coretype is None:
        os.environ.pop("OPENBLAS_CORETYPE", None)
    else:
        os.environ["OPENBLAS_CORETYPE"] = coretype
    if want_preload:
        env = dict(os.environ)
        env["LD_PRELOAD"] = ":".join(filter(None, [TCMALLOC, env.get("LD_PRELOAD")]))
        env["TESSERA_COMPARE_ORIGINAL_PRELOAD"] = os.environ.get("LD_PRELOAD", "")
        os.execve(sys.executable, [sys.executable] + sys.argv, env)


def tessera_environment():
    """The same environment less the tcmalloc preload (tessera runs as built)."""
    env = dict(os.environ)
    original = env.pop("TESSERA_COMPARE_ORIGINAL_PRELOAD", None)
    if original is not None:
        if original:
            env["LD_PRELOAD"] = original
        else:
            env.pop("LD_PRELOAD", None)
    return env


def mapped_libraries(*needles):
    found = set()
    with open("/proc/self/maps") as maps:
        for line in maps:
            path = line.split()[-1] if len(line.split()) >= 6 else ""
            if any(n in os.path.basename(path) for n in needles):
                found.add(os.path.realpath(path))
    return sorted(found)


def cpu_model():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown"


# ------------------------------------------------------------------ networks
# Written from components.md 1.1-1.5. Dimension letters as in tensor.h: N
# batch, C channels, H W spatial, E experts, S slots per expert, T tokens, D
# token width.

def build_torch_networks(torch):
    nn = torch.nn
    F = torch.nn.functional

    def same_pads(size, kernel, stride):
        """TF/Flax SAME: output ceil(size / stride), the extra pad at the end."""
        out = -(-size // stride)
        total = max((out - 1) * stride + kernel - size, 0)
        return total // 2, total - total // 2

    def max_pool_same(x, kernel=3, stride=2):
        """SAME max-pool by its definition: -inf padding, then a VALID pool."""
        top, bottom = same_pads(x.shape[2], kernel, stride)
        left, right = same_pads(x.shape[3], kernel, stride)
        x = F.pad(x, (left, right, top, bottom), value=float("-inf"))
        return F.max_pool2d(x, kernel, stride)

    def max_pool_same_native(x, kernel=3, stride=2):
        """The same pool without the padded copy: max_pool2d pads with -inf
        itself, symmetrically; one more row/column at the end (84 -> 42, 42 ->
        21) is ceil_mode's extra window. Checked equal to max_pool_same."""
        pads = {same_pads(x.shape[2], kernel, stride), same_pads(x.shape[3], kernel, stride)}
        assert len(pads) == 1, "square inputs only"
        before, after = pads.pop()
        assert after in (before, before + 1)
        return F.max_pool2d(x, kernel, stride, padding=before, ceil_mode=after > before)

    def lecun_normal_(w, fan_in):
        # Flax's truncated normal at 2 std, std corrected for the truncation.
        std = math.sqrt(1.0 / fan_in) / 0.87962566103423978
        with torch.no_grad():
            nn.init.trunc_normal_(w, 0.0, std, -2 * std, 2 * std)

    def conv3x3(c_in, c_out, xavier):
        # 3x3 stride 1 SAME pads 1 on every side: the conv's own padding.
        conv = nn.Conv2d(c_in, c_out, 3, padding=1)
        if xavier:
            nn.init.xavier_uniform_(conv.weight)
        else:
            lecun_normal_(conv.weight, c_in * 9)
        nn.init.zeros_(conv.bias)
        return conv

    class ImpalaEncoder(nn.Module):
        """Dopamine's: (16, 32, 32) stacks of conv -> max-pool 3x3/2 SAME ->
        2 x (ReLU, conv, ReLU, conv, + input), then ReLU. (N, 4, 84, 84) ->
        (N, 32, 11, 11)."""

        def __init__(self, channels=4, stack_sizes=(16, 32, 32), num_blocks=2, native_pool=False):
            super().__init__()
            self.pool = max_pool_same_native if native_pool else max_pool_same
            self.stacks = nn.ModuleList()
            for size in stack_sizes:
                stack = nn.Module()
                stack.conv = conv3x3(channels, size, xavier=True)
                stack.blocks = nn.ModuleList()
                for _ in range(num_blocks):
                    block = nn.Module()
                    block.conv1 = conv3x3(size, size, xavier=False)
                    block.conv2 = conv3x3(size, size, xavier=False)
                    stack.blocks.append(block)
                self.stacks.append(stack)
                channels = size

        def forward(self, x):
            for stack in self.stacks:
                x = self.pool(stack.conv(x))
                for block in stack.blocks:
                    x = x + block.conv2(F.relu(block.conv1(F.relu(x))))
            return F.relu(x)

    def dense(fan_in, fan_out):
        layer = nn.Linear(fan_in, fan_out)
        nn.init.xavier_uniform_(layer.weight)
        nn.init.zeros_(layer.bias)
        return layer

    def nhwc_order(x):
        """(N, C, H, W) -> (N, H*W, C): free for channels_last storage."""
        return x.permute(0, 2, 3, 1).reshape(x.shape[0], x.shape[2] * x.shape[3], x.shape[1])

    class SoftMoE(nn.Module):
        """Dopamine's labs/moes Soft MoE on tokens (N, T, D): router phi (D, E, S),
        S = ceil(T c / E); dispatch = softmax over the tokens for each slot,
        combine = softmax over all E*S slots for each token; expert e is
        dense(hidden) -> ReLU -> dense(D) with its own weights, as batched
        matmuls over (E, N*S, D)."""

        def __init__(self, num_tokens, dim, num_experts, hidden, capacity_factor=1.0):
            super().__init__()
            self.num_experts = num_experts
            self.slots = math.ceil(num_tokens * capacity_factor / num_experts)
            self.phi = nn.Parameter(torch.empty(dim, num_experts, self.slots))
            lecun_normal_(self.phi, dim * num_experts)
            # Dopamine always creates the normalisation scale; it is unused
            # without normalization (as in tessera's parameter count).
            self.scale = nn.Parameter(torch.ones(()))
            self.w1 = nn.Parameter(torch.empty(num_experts, dim, hidden))
            self.b1 = nn.Parameter(torch.zeros(num_experts, hidden))
            self.w2 = nn.Parameter(torch.empty(num_experts, hidden, dim))
            self.b2 = nn.Parameter(torch.zeros(num_experts, dim))
            for e in range(num_experts):
                nn.init.xavier_uniform_(self.w1.data[e].T)
                nn.init.xavier_uniform_(self.w2.data[e].T)

        def forward(self, x):
            n, t, d = x.shape
            e, s = self.num_experts, self.slots
            logits = torch.matmul(x, self.phi.reshape(d, e * s))      # (N, T, E*S)
            dispatch = torch.softmax(logits, dim=1)                    # over tokens
            combine = torch.softmax(logits, dim=2)                     # over all slots
            slots = torch.bmm(dispatch.transpose(1, 2), x)             # (N, E*S, D)
            slots = slots.reshape(n, e, s, d).transpose(0, 1).reshape(e, n * s, d)
            h = torch.relu(torch.baddbmm(self.b1.unsqueeze(1), slots, self.w1))
            y = torch.baddbmm(self.b2.unsqueeze(1), h, self.w2)       # (E, N*S, D)
            y = y.reshape(e, n, s, d).transpose(0, 1).reshape(n, e * s, d)
            return torch.bmm(combine, y)                               # (N, T, D)

        def forward_by_definition(self, x):
            """components.md 1.3 term by term, for checking forward()."""
            logits = torch.einsum("ntd,des->ntes", x, self.phi)
            n, t, e, s = logits.shape
            dispatch = torch.softmax(logits, dim=1)
            combine = torch.softmax(logits.reshape(n, t, e * s), dim=2).reshape(n, t, e, s)
            slot_in = torch.einsum("ntes,ntd->nesd", dispatch, x)
            h = torch.relu(torch.einsum("nesd,edh->nesh", slot_in, self.w1) + self.b1[:, None])
            y = torch.einsum("nesh,ehd->nesd", h, self.w2) + self.b2[:, None]
            return torch.einsum("ntes,nesd->ntd", combine, y)

    class Network(nn.Module):
        def __init__(self, head, channels_last, native_pool, num_experts=1, hidden=512):
            super().__init__()
            self.head = head
            self.channels_last = channels_last
            self.encoder = ImpalaEncoder(native_pool=native_pool)
            features = 11 * 11 * 32
            if head == "dense":
                self.hidden = dense(features, hidden)
            else:
                self.moe = SoftMoE(121, 32, num_experts, hidden)
            self.output = dense(hidden if head == "dense" else features, NUM_ACTIONS)

        def forward(self, x):
            x = self.encoder(x)                                        # (N, 32, 11, 11)
            if self.head == "dense":
                x = x.permute(0, 2, 3, 1).flatten(1) if self.channels_last else x.flatten(1)
                x = F.relu(self.hidden(x))
            else:
                # Per-conv tokens (N, 121, 32): for NCHW storage the transpose
                # is a strided view that the router matmul reads as it is.
                tokens = nhwc_order(x) if self.channels_last else x.flatten(2).transpose(1, 2)
                x = self.moe(tokens).flatten(1)
            return self.output(x)

    def make(name, channels_last, native_pool):
        kinds = {
            "impala_softmoe4": dict(head="softmoe", num_experts=4, hidden=512),
            "impala_tokenized_single_expert": dict(head="softmoe", num_experts=1, hidden=2048),
            "impala_flatten": dict(head="dense", hidden=512),
        }
        if name not in kinds:
            raise SystemExit(f"compare_networks: no PyTorch twin for network '{name}' "
                             f"(known: {', '.join(kinds)})")
        net = Network(channels_last=channels_last, native_pool=native_pool, **kinds[name])
        if channels_last:
            net = net.to(memory_format=torch.channels_last)
        return net

    return make, SoftMoE, ImpalaEncoder


def check_pools(torch, ImpalaEncoder):
    """The native-padding pool gives the same encoder outputs and input
    gradients as the -inf F.pad definition (float64)."""
    torch.manual_seed(0)
    by_definition = ImpalaEncoder().double()
    native = ImpalaEncoder(native_pool=True).double()
    native.load_state_dict(by_definition.state_dict())
    x = torch.rand(2, 4, 84, 84, dtype=torch.float64)
    outputs, grads = [], []
    for encoder in (by_definition, native):
        xi = x.clone().requires_grad_()
        y = encoder(xi)
        (y * torch.linspace(-1, 1, y.numel(), dtype=y.dtype).reshape(y.shape)).sum().backward()
        outputs.append(y.detach())
        grads.append(xi.grad)
    if outputs[0].shape != (2, 32, 11, 11):
        raise SystemExit(f"compare_networks: IMPALA output {tuple(outputs[0].shape)}, "
                         f"expected (2, 32, 11, 11)")
    diff = max((outputs[0] - outputs[1]).abs().max().item(),
               (grads[0] - grads[1]).abs().max().item())
    if diff > 1e-12:
        raise SystemExit(f"compare_networks: native SAME pool differs from F.pad by {diff:.3g}")


def check_soft_moe(torch, SoftMoE):
    """The batched-matmul Soft MoE equals the definition (float64)."""
    torch.manual_seed(0)
    for experts, hidden in ((4, 64), (1, 128)):
        moe = SoftMoE(121, 32, experts, hidden).double()
        with torch.no_grad():
            moe.b1.normal_()
            moe.b2.normal_()
        x = torch.randn(3, 121, 32, dtype=torch.float64)
        diff = (moe(x) - moe.forward_by_definition(x)).abs().max().item()
        if diff > 1e-10:
            raise SystemExit(f"compare_networks: Soft MoE (E={experts}) differs from its "
                             f"definition by {diff:.3g}")


# -------------------------------------------------------------------- timing

def time_torch(torch, net, obs, actions, reps):
    params = list(net.parameters())

    def step():
        for p in params:
            p.grad = None
        x = obs.to(torch.float32).mul_(1.0 / 255)
        q = net(x)
        loss = q.gather(1, actions[:, None]).mean()
        loss.backward()

    for _ in range(WARMUP_STEPS):
        step()
    samples = []
    gc_was = gc.isenabled()
    gc.disable()
    try:
        for _ in range(reps):
            t0 = time.perf_counter()
            step()
            samples.append(time.perf_counter() - t0)
    finally:
        if gc_was:
            gc.enable()
    return 1e3 * statistics.median(samples)


def run_tessera(bench, config, threads, reps, batch, env):
    cmd = [bench, "--json", "--threads", str(threads), "--reps", str(reps), "--batch", str(batch),
           config]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"compare_networks: {' '.join(cmd)} failed ({proc.returncode}):\n"
                         f"{proc.stdout}{proc.stderr}")
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    if len(rows) != 1:
        raise SystemExit(f"compare_networks: expected one JSON line from {' '.join(cmd)}, "
                         f"got:\n{proc.stdout}")
    return rows[0]


def cpu_seconds():
    """(CPU seconds all processes have used, CPU seconds this process and its
    waited-for children have used): their difference is other people's load."""
    with open("/proc/stat") as f:
        ticks = [int(v) for v in f.readline().split()[1:9]]
    busy = (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")
    t = os.times()
    return busy, t.user + t.system + t.children_user + t.children_system


def foreign_load(since, until):
    """Fraction of the machine's CPUs used by other processes between two
    (wall time, cpu_seconds()) samples."""
    wall = until[0] - since[0]
    other = (until[1][0] - since[1][0]) - (until[1][1] - since[1][1])
    return max(other, 0.0) / (wall * os.cpu_count()) if wall > 0 else 0.0


def sample():
    return time.monotonic(), cpu_seconds()


def wait_for_quiet(threshold, max_wait):
    """Waits (up to max_wait seconds) until other processes use less than
    `threshold` of the machine over one second; returns the last reading."""
    deadline = time.monotonic() + max_wait
    while True:
        before = sample()
        time.sleep(1.0)
        load = foreign_load(before, sample())
        if load < threshold or time.monotonic() >= deadline:
            return load
        print(f"  waiting: other processes use {100 * load:.0f}% of the CPUs",
              file=sys.stderr, flush=True)


def load_average():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def main():
    args = parse_args()
    prepare_environment(args)
    import torch  # after the environment is settled

    bench = repo_path(args.bench)
    if not os.access(bench, os.X_OK):
        raise SystemExit(f"compare_networks: {bench} is not an executable; build it "
                         f"(ninja -C build bench/bench_networks) or pass --bench PATH")
    configs = [repo_path(c) for c in (args.configs or DEFAULT_CONFIGS)]
    threads = [int(t) for t in args.threads.split(",")]
    variants = args.torch_variants.split(",")
    for v in variants:
        if v not in ALL_VARIANTS:
            raise SystemExit(f"compare_networks: unknown variant '{v}' "
                             f"(known: {', '.join(ALL_VARIANTS)})")
    tess_env = tessera_environment()

    blas_lines = [line.strip() for line in torch.__config__.show().splitlines()
                  if "BLAS" in line or "LAPACK" in line or "MKL" in line]
    print("## Configuration\n")
    print(f"- CPU: {cpu_model()}, {os.cpu_count()} logical CPUs; load average at start "
          f"{load_average()}")
    print(f"- torch {torch.__version__} ({torch.__file__}), "
          f"mkldnn available: {torch.backends.mkldnn.is_available()}, "
          f"mkldnn enabled: {torch.backends.mkldnn.enabled}, "
          f"parallel backend: {torch.__config__.parallel_info().splitlines()[-1].strip()}")
    print("- torch.__config__.show(), BLAS-related lines:")
    for line in blas_lines:
        for part in line.split(", "):
            if any(k in part for k in ("BLAS", "LAPACK", "MKL")):
                print(f"    {part.strip()}")
    print(f"- BLAS libraries mapped in this process: {', '.join(mapped_libraries('blas')) or 'none'}")
    print(f"- OPENBLAS_CORETYPE for torch: {os.environ.get('OPENBLAS_CORETYPE', '(unset)')}")
    preloaded = mapped_libraries("tcmalloc")
    print(f"- tcmalloc preloaded for torch: {'yes, ' + preloaded[0] if preloaded else 'no'}")
    print(f"- tessera: {bench}")
    print(f"- batch {args.batch}, uint8 84x84x4 / 255, {NUM_ACTIONS} actions; "
          f"{WARMUP_STEPS} warm-up steps, median of {args.reps} steps, {args.rounds} rounds "
          f"alternating tessera and the PyTorch variants {', '.join(variants)}\n")
    sys.stdout.flush()

    make, SoftMoE, ImpalaEncoder = build_torch_networks(torch)
    check_soft_moe(torch, SoftMoE)
    check_pools(torch, ImpalaEncoder)

    torch.manual_seed(1)
    gen = torch.Generator().manual_seed(2)
    obs_nhwc = torch.randint(0, 256, (args.batch, 84, 84, 4), dtype=torch.uint8, generator=gen)
    actions = torch.randint(0, NUM_ACTIONS, (args.batch,), generator=gen)
    # Each memory format's observations in its own natural storage.
    inputs = {
        "contiguous": obs_nhwc.permute(0, 3, 1, 2).contiguous(),
        "channels_last": obs_nhwc.permute(0, 3, 1, 2),  # NHWC bytes: channels_last strides
    }
    assert inputs["channels_last"].is_contiguous(memory_format=torch.channels_last)

    names = [os.path.splitext(os.path.basename(c))[0] for c in configs]
    nets = {}
    for name in names:
        for v in variants:
            fmt, pool = v.split("/")
            nets[(name, v)] = make(name, fmt == "channels_last", pool == "native")

    # measurements[(name, T)]: one dict per round
    measurements = {(name, t): [] for name in names for t in threads}
    for r in range(args.rounds):
        for config, name in zip(configs, names):
            for t in threads:
                quiet = wait_for_quiet(args.quiet_threshold, args.quiet_wait)
                start = sample()
                tess = run_tessera(bench, config, t, args.reps, args.batch, tess_env)
                torch.set_num_threads(t)
                row = {"round": r, "tessera": tess, "torch": {}}
                for v in variants:
                    fmt = v.split("/")[0]
                    row["torch"][v] = time_torch(torch, nets[(name, v)], inputs[fmt], actions,
                                                 args.reps)
                row["torch_params"] = sum(p.numel() for p in nets[(name, variants[0])].parameters())
                row["foreign_load"] = foreign_load(start, sample())
                row["foreign_load_before"] = quiet
                measurements[(name, t)].append(row)
                print(f"round {r + 1}/{args.rounds} {name} T={t}: tessera {tess['ms']:.2f} ms; "
                      f"torch " + ", ".join(f"{v} {ms:.2f}" for v, ms in row["torch"].items()) +
                      f" ms; other processes {100 * row['foreign_load']:.0f}% of the CPUs",
                      file=sys.stderr, flush=True)

    print("## Parameters and checks\n")
    print("| network | tessera params | PyTorch params | tessera fwd GFLOP (batch) "
          "| tessera oneDNN vs reference: Q / grads |")
    print("|---|---:|---:|---:|---|")
    for name in names:
        row = measurements[(name, threads[0])][0]
        tess = row["tessera"]
        print(f"| {name} | {tess['params']} | {row['torch_params']} | "
              f"{tess['forward_flops'] * 1e-9:.3f} | {tess['q_rel_diff']:.2g} / "
              f"{tess['grad_rel_diff']:.2g} |")
        if tess["params"] != row["torch_params"]:
            raise SystemExit(f"compare_networks: {name}: tessera has {tess['params']} parameters, "
                             f"the PyTorch twin {row['torch_params']}")
    print()

    print("## Forward + backward, batch %d (median over rounds of per-round medians)\n"
          % args.batch)
    print(f"Rounds in which other processes used more than {100 * args.max_foreign_load:.0f}% "
          f"of the CPUs are left out when a cell has a quieter one (column 'rounds').\n")
    print("| network | threads | tessera ms | PyTorch ms | PyTorch variant | tessera GFLOP/s "
          "| PyTorch GFLOP/s | ratio (PyTorch ms / tessera ms) | rounds |")
    print("|---|---:|---:|---:|---|---:|---:|---:|---:|")
    summary = []
    for name in names:
        for t in threads:
            all_rows = measurements[(name, t)]
            rows = [row for row in all_rows if row["foreign_load"] <= args.max_foreign_load]
            rows = rows or all_rows
            tess_ms = statistics.median(row["tessera"]["ms"] for row in rows)
            torch_ms = {v: statistics.median(row["torch"][v] for row in rows) for v in variants}
            best = min(torch_ms, key=torch_ms.get)
            flops = 3.0 * rows[0]["tessera"]["forward_flops"]
            ratio = torch_ms[best] / tess_ms
            print(f"| {name} | {t} | {tess_ms:.2f} | {torch_ms[best]:.2f} | {best} | "
                  f"{flops / tess_ms * 1e-6:.1f} | {flops / torch_ms[best] * 1e-6:.1f} | "
                  f"{ratio:.2f} | {len(rows)}/{len(all_rows)} |")
            summary.append(dict(network=name, threads=t, tessera_ms=tess_ms, torch_ms=torch_ms,
                                torch_variant=best, ratio=ratio, used_rounds=len(rows),
                                rounds=all_rows))
    print()
    print("### Every variant, every round (ms)\n")
    print("| network | threads | tessera | " + " | ".join(f"PyTorch {v}" for v in variants) +
          " | other processes' CPU % |")
    print("|---|---:|---|" + "---|" * len(variants) + "---|")
    for s in summary:
        rows = s["rounds"]
        cells = [" ".join("%.2f" % row["tessera"]["ms"] for row in rows)]
        cells += [" ".join("%.2f" % row["torch"][v] for row in rows) for v in variants]
        cells += [" ".join("%.0f" % (100 * row["foreign_load"]) for row in rows)]
        print(f"| {s['network']} | {s['threads']} | " + " | ".join(cells) + " |")
    print(f"\nload average at the end {load_average()}")
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(dict(torch=torch.__version__, tcmalloc=bool(preloaded),
                           openblas_coretype=os.environ.get("OPENBLAS_CORETYPE"),
                           results=summary), f, indent=1)


if __name__ == "__main__":
    main()
