"""Real multi-process runs (gloo on the CPU): the compressed payloads cross process boundaries.

Checks: a 4-process run reproduces the in-process agent simulation of ``run_discrete`` (float64, same seed); the
bytes each rank sends; the torch.optim optimizers and the DDP hook against the update rule written out by hand; a
killed rank stops the others with an error in bounded time.
"""

import time

import numpy as np
import pytest
import torch
import torch.distributed as dist

import sdesim
from sdesim import comm, compressors, data, methods, nets, noise, objectives, optim
from sdesim.distributed import DistributedError, launch, run_distributed


@pytest.fixture(scope="module")
def mlp():
    ds = data.digits(seed=0)
    return objectives.Network(nets.mlp(64, 10, hidden=(16,), seed=0), ds.x_train, ds.y_train)


@pytest.mark.parametrize("method", [
    methods.DSGD(lr=0.1, n_agents=4),
    methods.DCSGD(lr=0.1, n_agents=4, compressor=compressors.RandK(k=121)),
    methods.DSignSGD(lr=0.01, n_agents=4),
], ids=["DSGD", "DCSGD-RandK", "DSignSGD"])
def test_four_processes_reproduce_the_in_process_agents(mlp, method):
    z = noise.Gaussian(sigma=0.5)
    a = sdesim.run_discrete(method, mlp, z, mlp.x0, steps=25, runs=2, seed=3)
    b = run_distributed(method, mlp, z, mlp.x0, steps=25, runs=2, seed=3)
    # float64, same random numbers: only the order of the floating-point sums may differ
    rel = np.max(np.abs(a.loss - b.loss) / np.abs(a.loss))
    assert rel <= 1e-6
    assert a.loss[:, -1].mean() < a.loss[:, 0].mean()  # the runs moved: the comparison is not vacuous
    info = b.meta["distributed"]
    assert info["world_size"] == 4 and info["backend"] == "gloo"
    d, fp32 = mlp.dim, info["fp32_allreduce_bytes"]
    per_step = info["bytes_per_step_per_run"]
    assert len(set(per_step)) == 1
    if isinstance(method, methods.DSignSGD):
        assert per_step[0] <= fp32 / 16  # a flag byte, and ⌈d/8⌉ bytes of packed signs per run
        assert per_step[0] == pytest.approx(-(-d // 8) + 1 / 2)
    elif isinstance(method, methods.DCSGD):
        k = method.compressor.k  # int32 index and float64 value per kept entry, and the count (8 bytes per message)
        assert per_step[0] == pytest.approx(k * (4 + 8) + 8 / 2)
    else:
        assert per_step[0] == 8 * d  # float64 all-reduce


@pytest.mark.parametrize("method", [
    methods.DCSGD(lr=0.1, n_agents=4, compressor=compressors.QSGD(levels=4)),
    methods.DSignSGD(lr=0.01, n_agents=4),
], ids=["DCSGD-QSGD", "DSignSGD"])
def test_minibatch_agents_draw_their_own_examples(mlp, method):
    z = noise.Minibatch(batch_size=16)
    a = sdesim.run_discrete(method, mlp, z, mlp.x0, steps=10, runs=1, seed=5)
    b = run_distributed(method, mlp, z, mlp.x0, steps=10, runs=1, seed=5)
    assert np.max(np.abs(a.loss - b.loss) / a.loss) <= 1e-6
    sent = b.meta["distributed"]["bytes_per_step_per_run"][0]
    if isinstance(method, methods.DSignSGD):
        # digits has pixels that are 0 in every image: their weights get exact-zero gradients, sign 0, so the
        # signs travel 5 per byte ({−1, 0, 1}) after the flag byte; still below 1/16 of a float32 all-reduce
        assert sent == 1 + -(-mlp.dim // 5) and sent <= 4 * mlp.dim / 16


def test_a_killed_rank_stops_the_others_with_an_error():
    f = objectives.Quadratic(h=[1.0] * 20)
    m = methods.DSignSGD(lr=0.01, n_agents=4)
    start = time.monotonic()
    with pytest.raises(DistributedError, match="rank 2 failed .killed by SIGKILL") as info:
        run_distributed(m, f, noise.Gaussian(sigma=1.0), torch.ones(20, dtype=torch.float64), steps=10**7,
                        seed=0, _kill=(2, 30))
    assert time.monotonic() - start < 60
    codes = info.value.exit_codes
    assert codes[2] < 0 and all(c == 1 for r, c in enumerate(codes) if r != 2)  # the others raised themselves


# -- torch.optim optimizers and the DDP hook, in a real process group ------------------------------------------------
def _quadratic_losses(rank, x):
    """Rank r's own objective ½ Σ_j (j + 1 + r)(x_j − r)² (heterogeneous agents)."""
    h = torch.arange(1, x.numel() + 1, dtype=x.dtype) + rank
    return 0.5 * (h * (x - rank) ** 2).sum()


def _optim_worker(kind: str, steps: int, lr: float):
    rank = dist.get_rank()
    x = torch.nn.Parameter(torch.linspace(-1.0, 1.0, 7, dtype=torch.float64))
    if kind.startswith("ddp"):
        model = torch.nn.parallel.DistributedDataParallel(_Holder(x))
        hook = optim.CompressionState(compressors.Sign() if kind == "ddp" else compressors.RandK(k=2), seed=1)
        model.register_comm_hook(hook, optim.compression_hook)
        opt = torch.optim.SGD(model.parameters(), lr=lr)
        param = model.module.x
    else:
        opt = {"sign": optim.DSignSGD([x], lr=lr),
               "randk": optim.DCSGD([x], lr=lr, compressor=compressors.RandK(k=2), seed=4),
               "sgd": optim.DSGD([x], lr=lr)}[kind]
        model, param = None, x
    for _ in range(steps):
        opt.zero_grad()
        loss = _quadratic_losses(rank, model() if model is not None else param)
        loss.backward()
        opt.step()
    sent = hook.bytes_sent if kind.startswith("ddp") else opt.bytes_sent
    replicas = [torch.empty_like(param) for _ in range(dist.get_world_size())]
    dist.all_gather(replicas, param.detach())
    assert all(torch.equal(r, replicas[0]) for r in replicas), "the replicas differ"
    return param.detach().clone(), sent


class _Holder(torch.nn.Module):
    def __init__(self, x):
        super().__init__()
        self.x = x

    def forward(self):
        return self.x


def _by_hand(kind, steps, lr, n=4):
    x = torch.linspace(-1.0, 1.0, 7, dtype=torch.float64)
    for _ in range(steps):
        grads = []
        for r in range(n):
            h = torch.arange(1, 8, dtype=x.dtype) + r
            grads.append(h * (x - r))
        g = torch.stack(grads)
        u = torch.sign(g).mean(0) if kind in ("sign", "ddp") else g.mean(0)
        x = x - lr * u
    return x


@pytest.mark.parametrize("kind", ["sign", "sgd", "ddp"])
def test_optimizers_and_ddp_hook_apply_the_aggregate(kind):
    x, sent = launch(_optim_worker, 4, kind, 20, 0.05)
    assert torch.allclose(x, _by_hand(kind, 20, 0.05), rtol=0, atol=1e-12)
    if kind in ("sign", "ddp"):
        # the flag byte, then 7 signs in one byte (8 per byte), or in two bytes (5 per byte) at a step where some
        # rank's gradient has an exact 0 (step 0: x_3 = 0 is rank 0's minimizer)
        assert sent == 20 * 2 + 1


@pytest.mark.parametrize("kind", ["randk", "ddp-randk"])
def test_randk_keeps_replicas_identical_and_sends_k_entries(kind):
    # the worker asserts that every rank holds the same parameters; a Rand-2 step moves at most 2 · 4 coordinates
    x, sent = launch(_optim_worker, 4, kind, 10, 0.05)
    start = torch.linspace(-1.0, 1.0, 7, dtype=torch.float64)
    assert torch.isfinite(x).all() and not torch.equal(x, start)
    assert sent == 10 * (8 + 2 * (4 + 8))  # the count, then two int32 indices and two float64 values per step


def test_study_with_distributed_backend_and_torchrun(tmp_path):
    """``[discrete] backend = "distributed"`` in a study, and the same study under torchrun, equal run_discrete."""
    from sdesim import config, study

    text = """
[objective]
name = "quadratic"
h = [1.0, 2.0, 3.0, 4.0]
[noise]
name = "studentt"
nu = 3.0
sigma = 0.5
[method]
name = "dcsgd"
lr = 0.05
n_agents = 2
compressor = { name = "bernoulli", p = 0.5 }
[run]
steps = 50
seed = 7
x0 = [1.0, -1.0, 0.5, 2.0]
[discrete]
runs = 3
backend = "distributed"
[sde]
enabled = false
[output]
dir = "%s"
""" % (tmp_path / "out").as_posix()
    path = tmp_path / "study.toml"
    path.write_text(text)
    cfg = config.load(path)
    study.run_study(cfg)
    method, objective, z, x0 = config.build_parts(cfg)
    ref = sdesim.run_discrete(method, objective, z, x0, steps=50, runs=3, seed=7)
    ours = sdesim.load(tmp_path / "out" / "discrete.npz")
    np.testing.assert_allclose(ours.loss, ref.loss, rtol=1e-6, atol=0)
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "-m",
                           "sdesim.distributed", str(path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    np.testing.assert_allclose(sdesim.load(tmp_path / "out" / "distributed.npz").loss, ref.loss, rtol=1e-6, atol=0)


def test_single_process_optimizer_is_one_agent():
    x = torch.nn.Parameter(torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64))
    opt = optim.DSignSGD([x], lr=0.1)
    x.grad = torch.tensor([3.0, -1.0, 0.0], dtype=torch.float64)
    opt.step()
    assert torch.equal(x.detach(), torch.tensor([0.9, -1.9, 0.5], dtype=torch.float64))
    assert opt.n_agents == 1 and opt.rank == 0


def test_bit_and_trit_packing_round_trip():
    g = torch.Generator().manual_seed(0)
    for d in (1, 4, 5, 7, 8, 9, 1000):
        bits = torch.rand(3, d, generator=g) > 0.5
        packed = comm.pack_bits(bits)
        assert packed.dtype == torch.uint8 and packed.shape == (3, -(-d // 8))
        assert torch.equal(comm.unpack_bits(packed, d), bits)
        trits = torch.randint(0, 3, (3, d), generator=g, dtype=torch.uint8)
        packed = comm.pack_trits(trits)
        assert packed.dtype == torch.uint8 and packed.shape == (3, -(-d // 5))
        assert torch.equal(comm.unpack_trits(packed, d), trits)


def test_bad_inputs_name_the_parameter():
    with pytest.raises(ValueError, match="lr"):
        optim.DSGD([torch.nn.Parameter(torch.zeros(2))], lr=-1.0)
    with pytest.raises(ValueError, match="compressor"):
        optim.DCSGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1, compressor="randk")
    with pytest.raises(ValueError, match="nprocs"):
        launch(_optim_worker, 0, "sign", 1, 0.1)
