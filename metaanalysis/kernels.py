"""The kernels that execute the notes (for :mod:`metaanalysis.render`): each note runs in
its own fresh kernel, which gets its share of the machine's cores as BLAS threads.

A pool of warm kernels (started, the library imported, before their notebook is known) was
built and measured on the 2-core machine: make notes took 57-59 s with it and 48-53 s
without (issue 15's notes), because on cores that are all busy it only moves the kernels'
start-up into the time of the other note's work; it was not kept.
"""

from __future__ import annotations

import os

#: The environment variables that set how many threads a kernel's BLAS and OpenMP use.
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def kernel_threads(workers: int, cores: int | None = None) -> int:
    """The BLAS threads each note's kernel gets: the cores shared among the notes rendered at
    once. With as many kernels as cores, a second BLAS thread per kernel only contends for a
    busy core (OpenBLAS threads spin while they wait): a cold ``make notes`` took 60 s with
    them, 41 s without, on 2 cores, with the same bytes (benchmarks/README.md)."""
    cores = cores or os.cpu_count() or 1
    return max(1, cores // max(1, workers))


def kernel_manager_class(threads: int | None):
    """The kernel manager a note's kernel is started with: the kernel's environment is this
    process's, plus ``threads`` BLAS and OpenMP threads unless the user set them (passed to
    the kernel's process alone, never set in this one)."""
    from jupyter_client.manager import AsyncKernelManager

    if not threads:
        return AsyncKernelManager

    class NoteKernelManager(AsyncKernelManager):
        async def _async_pre_start_kernel(self, **kw):
            env = dict(kw.pop("env", None) or os.environ)
            for name in THREAD_VARIABLES:
                env.setdefault(name, str(threads))
            return await super()._async_pre_start_kernel(env=env, **kw)

    return NoteKernelManager
