"""cosec-lcd: few-step pose-guided human animation by latent consistency distillation.

The library knows nothing of DVC, Prefect or MLflow configuration; stages and flows
call into it.
"""

__version__ = "0.1.0"
