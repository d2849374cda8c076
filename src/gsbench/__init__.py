"""gsbench: benchmark and reproduction harness for 2D Gaussian splatting image representation.

Entry points: ``python -m gsbench ...`` (Hydra CLI), :func:`gsbench.gaussians.render` (the renderer's
front door) and the registries in :mod:`gsbench.methods`, :mod:`gsbench.data` and :mod:`gsbench.metrics`.
"""

__version__ = "0.1.0"
