"""An MLflow experiment logger for revkit: :class:`revkit_mlflow.logger.MLflowLogger`, registered as ``mlflow``.

The package imports nothing at load time (the entry point loads :mod:`revkit_mlflow.plugin`, which imports
the logger inside its hook), so an installed plugin costs nothing until a registry is built.
"""

__version__ = "0.1.0"
