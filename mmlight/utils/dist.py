"""Distributed launch for tools/train.py and tools/test.py: mmengine's set-up where a GPU exists, gloo on CPU.

mmengine 0.10.7's ``init_dist`` calls ``torch.cuda.set_device`` whatever the backend, and its Runner wraps the model
into ``DistributedDataParallel`` with ``device_ids=[LOCAL_RANK]``; both fail on a machine without a GPU. On such a
machine :func:`setup_distributed` initialises the process group itself (``gloo``; the Runner then skips
``init_dist``, it only initialises a group that does not exist yet) and wraps with ``device_ids=None``. Where an
accelerator exists, it only checks the launcher's environment and leaves the rest to mmengine (NCCL on CUDA).
"""
import datetime
import os
import subprocess
from typing import Mapping, Optional

import torch.distributed as torch_dist
from mmengine.config import Config, ConfigDict
from mmengine.device import get_device
from mmengine.registry import MODEL_WRAPPERS
from torch.nn.parallel import DistributedDataParallel

#: The environment each launcher must have set (torchrun, srun, mpirun).
LAUNCH_ENV = {
    'pytorch': ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT'),
    'slurm': ('SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_NODELIST'),
    'mpi': ('OMPI_COMM_WORLD_LOCAL_RANK', 'OMPI_COMM_WORLD_RANK', 'OMPI_COMM_WORLD_SIZE', 'MASTER_ADDR'),
}
LAUNCH_HOW = {
    'pytorch': 'start it with torchrun, e.g. bash tools/dist_train.sh CONFIG NUM_PROCESSES',
    'slurm': 'start it with srun, e.g. bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR',
    'mpi': 'start it with mpirun',
}


class LaunchError(RuntimeError):
    """The launcher named by ``--launcher`` did not start this process (its environment variables are missing)."""


def check_launch_env(launcher: str, environ: Optional[Mapping[str, str]] = None) -> None:
    """Raise :class:`LaunchError` (one line) when ``launcher`` is not ``'none'`` and its variables are missing."""
    if launcher == 'none':
        return
    environ = os.environ if environ is None else environ
    if launcher not in LAUNCH_ENV:
        raise LaunchError(f'unknown launcher {launcher!r}; use one of none, {", ".join(LAUNCH_ENV)}')
    missing = [name for name in LAUNCH_ENV[launcher] if name not in environ]
    if missing:
        raise LaunchError(f'--launcher {launcher} needs the environment variables {", ".join(missing)}, which are '
                          f'not set: {LAUNCH_HOW[launcher]} (or use --launcher none for one process)')


def _set_launch_env(launcher: str, port: Optional[int] = None) -> None:
    """RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT from slurm's or Open MPI's variables, as mmengine's
    ``init_dist`` sets them (torchrun sets them itself)."""
    env = os.environ
    if launcher == 'slurm':
        env['RANK'] = env['SLURM_PROCID']
        env['WORLD_SIZE'] = env['SLURM_NTASKS']
        env['LOCAL_RANK'] = env.get('SLURM_LOCALID', '0')
        if 'MASTER_ADDR' not in env:
            env['MASTER_ADDR'] = subprocess.getoutput(f'scontrol show hostname {env["SLURM_NODELIST"]} | head -n1')
    elif launcher == 'mpi':
        env['RANK'] = env['OMPI_COMM_WORLD_RANK']
        env['WORLD_SIZE'] = env['OMPI_COMM_WORLD_SIZE']
        env['LOCAL_RANK'] = env['OMPI_COMM_WORLD_LOCAL_RANK']
    if port is not None:
        env['MASTER_PORT'] = str(port)
    env.setdefault('MASTER_PORT', '29500')  # torch.distributed's default port


def init_cpu_process_group(launcher: str, dist_cfg: Optional[dict] = None) -> None:
    """Initialise the default process group for CPU processes: ``env_cfg.dist_cfg`` of the config, with its
    ``backend`` ``'nccl'`` (GPU only) replaced by ``'gloo'`` and ``timeout`` in seconds as in mmengine."""
    kwargs = dict(dist_cfg or {})
    backend = kwargs.pop('backend', 'gloo')
    backend = 'gloo' if backend == 'nccl' else backend
    init_backend = kwargs.pop('init_backend', 'torch')
    if init_backend != 'torch':
        raise LaunchError(f'env_cfg.dist_cfg.init_backend={init_backend!r} needs a GPU; on CPU only \'torch\' works')
    _set_launch_env(launcher, kwargs.pop('port', None))
    if kwargs.get('timeout') is not None:
        kwargs['timeout'] = datetime.timedelta(seconds=kwargs['timeout'])
    torch_dist.init_process_group(backend=backend, **kwargs)


def _is_ddp(wrapper_type) -> bool:
    if isinstance(wrapper_type, str):
        wrapper_type = MODEL_WRAPPERS.get(wrapper_type)
    return isinstance(wrapper_type, type) and issubclass(wrapper_type, DistributedDataParallel)


def cpu_model_wrapper(cfg: Config) -> None:
    """``cfg.model_wrapper_cfg`` for CPU processes: mmengine's default ``MMDistributedDataParallel`` (buffers not
    broadcast, ``find_unused_parameters`` from the config) with ``device_ids=None``; a configured
    ``DistributedDataParallel`` wrapper keeps its options and gets ``device_ids=None``."""
    wrapper = cfg.get('model_wrapper_cfg')
    if wrapper is None:
        cfg.model_wrapper_cfg = ConfigDict(type='MMDistributedDataParallel', device_ids=None, broadcast_buffers=False,
                                           find_unused_parameters=cfg.get('find_unused_parameters', False))
    elif _is_ddp(wrapper.get('type', 'MMDistributedDataParallel')):
        wrapper.device_ids = None


def setup_distributed(cfg: Config) -> Config:
    """Prepare the launch named by ``cfg.launcher`` (``--launcher``) before the Runner is built.

    ``'none'``: nothing. Otherwise the launcher's environment variables must be set (:class:`LaunchError` names the
    missing ones). With an accelerator mmengine initialises the process group as usual (NCCL on CUDA); on a
    CPU-only machine the process group is initialised here with gloo and the model is wrapped without device ids.
    """
    launcher = cfg.get('launcher', 'none')
    if launcher == 'none':
        return cfg
    check_launch_env(launcher)
    if get_device() != 'cpu':
        return cfg
    if not torch_dist.is_initialized():
        init_cpu_process_group(launcher, cfg.get('env_cfg', {}).get('dist_cfg'))
    cpu_model_wrapper(cfg)
    return cfg
