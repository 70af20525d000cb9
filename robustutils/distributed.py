"""Data-parallel training across processes started by ``torchrun`` (DistributedDataParallel).

Every process (rank) draws the same global permutation from the same seeded generator and cuts
each global batch of ``batch_size`` examples into contiguous shards, one per rank: the union of
the shards is exactly the batch a single process trains on. DDP averages the shards' gradients;
each shard's loss is weighted by its share of the global batch, so that the step is the global
batch's mean gradient, as in one process, up to the order of float summation.

Each rank attacks its own shard on its own module, without collectives: the training losses run
the attack on :func:`unwrap` of the network they are given.

Two things make a run on N processes differ from one process beyond rounding: an attack's random
starts are drawn per rank (from a per-rank seed, :func:`rank_seed`), so they cannot match a
single process draw for draw; and BatchNorm would compute its statistics per shard (such models
need ``torch.nn.SyncBatchNorm.convert_sync_batchnorm`` for equality; the MNIST CNN has none).

Without ``torchrun`` nothing here starts a process group, and :func:`current` reports one rank.
"""

import dataclasses
import os

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

TORCHRUN_VARIABLES = ("WORLD_SIZE", "RANK", "LOCAL_RANK")


@dataclasses.dataclass(frozen=True)
class Group:
    """This process's place among the training processes: ``rank`` of ``world_size``."""

    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        """True on rank 0, the one that prints, logs and writes files."""
        return self.rank == 0

    @property
    def parallel(self) -> bool:
        """True when more than one process trains (gradients are then averaged by DDP)."""
        return self.world_size > 1


def launched() -> bool:
    """Return True when ``torchrun`` started this process (it sets WORLD_SIZE, RANK and LOCAL_RANK)."""
    return all(name in os.environ for name in TORCHRUN_VARIABLES)


def start() -> torch.device:
    """Join the process group ``torchrun`` describes; return this rank's device.

    The backend is NCCL with one GPU per rank (``cuda:LOCAL_RANK``) when CUDA is present, else
    gloo on the CPU.
    """
    if not launched():
        raise RuntimeError(
            f"start() needs the variables torchrun sets ({', '.join(TORCHRUN_VARIABLES)}): "
            "launch with torchrun --nproc-per-node N -m robustutils train CONFIG"
        )
    if torch.cuda.is_available():
        local_rank = int(os.environ["LOCAL_RANK"])
        if local_rank >= torch.cuda.device_count():
            raise RuntimeError(
                f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} GPUs are visible: "
                "give torchrun --nproc-per-node at most the number of GPUs"
            )
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        dist.init_process_group("nccl")
        return device
    dist.init_process_group("gloo")
    return torch.device("cpu")


def stop() -> None:
    """Leave the process group, if this process is in one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def current() -> Group:
    """Return this process's :class:`Group`: from the running process group, else rank 0 of 1."""
    if dist.is_available() and dist.is_initialized():
        return Group(dist.get_rank(), dist.get_world_size())
    return Group()


def rank_seed(seed: int, rank: int) -> int:
    """Return the seed of rank ``rank``'s global RNG (random starts): ``seed`` itself on rank 0,
    an independent stream (NumPy's ``SeedSequence([seed, rank])``) on the others."""
    if rank == 0:
        return seed
    return int(np.random.SeedSequence([seed, rank]).generate_state(1)[0])


def check_batches(n: int, batch_size: int, group: Group) -> None:
    """Raise ``ValueError`` when a global batch of ``n`` examples cut ``batch_size`` at a time would
    leave some rank an empty shard."""
    smallest = min(batch_size, n % batch_size or batch_size)
    if smallest < group.world_size:
        raise ValueError(
            f"a global batch of {smallest} examples cannot be shared by {group.world_size} processes: "
            f"choose batch_size and the number of training examples ({n}) so that every batch "
            f"(the last one included) holds at least one example per process"
        )


def shards(batch_iter, group: Group):
    """Yield ``(x, y, weight)`` for each global batch ``(x, y)`` of ``batch_iter``: this rank's
    contiguous slice and the factor its mean loss is multiplied by (``world_size * shard / batch``;
    exactly 1.0 in one process and for equal shards)."""
    for xb, yb in batch_iter:
        if not group.parallel:
            yield xb, yb, 1.0
            continue
        x_r = torch.tensor_split(xb, group.world_size)[group.rank]
        y_r = torch.tensor_split(yb, group.world_size)[group.rank]
        yield x_r, y_r, group.world_size * len(y_r) / len(yb)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """Return the module inside a DistributedDataParallel wrapper, or ``model`` itself."""
    return model.module if isinstance(model, DistributedDataParallel) else model


def wrap(model: torch.nn.Module, group: Group) -> torch.nn.Module:
    """Return the network to train: ``model`` itself in one process, on several ``model`` in
    DistributedDataParallel. Attacks run on the module inside (:func:`unwrap`), as the training
    losses do (:func:`robustutils.train.madry_loss`, :class:`robustutils.trades.TradesLoss`): through
    the wrapper every forward pass would broadcast the buffers (a collective per attack step) and
    prepare a gradient reduction that input gradients never trigger."""
    if not group.parallel:
        return model
    device = next(model.parameters()).device
    return DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)


def sum_over_ranks(*values, group: Group, device: torch.device) -> tuple:
    """Return ``values`` (numbers or 0-d tensors) summed over all ranks, as float64 tensors; in
    one process the values themselves, untouched."""
    if not group.parallel:
        return values
    totals = torch.stack([torch.as_tensor(v, device=device).to(torch.float64) for v in values])
    dist.all_reduce(totals)
    return tuple(totals.unbind())


def gather(obj, group: Group) -> list:
    """Return ``[obj of rank 0, obj of rank 1, ...]`` on every rank (``[obj]`` in one process)."""
    if not group.parallel:
        return [obj]
    out = [None] * group.world_size
    dist.all_gather_object(out, obj)
    return out


def barrier(group: Group) -> None:
    """Wait until every rank gets here (nothing to wait for in one process)."""
    if group.parallel:
        dist.barrier()
