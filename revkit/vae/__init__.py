"""The model kind ``"vae"``: variational autoencoders whose approximate posterior is a normalizing
flow (planar, Real NVP).

:mod:`revkit.vae.model` (the model), :mod:`revkit.vae.networks` (encoder, decoders),
:mod:`revkit.vae.bounds` (ELBO and importance-weighted bounds), :mod:`revkit.vae.objective` (the training
objective), :mod:`revkit.vae.params` (``[model.vae]``), :mod:`revkit.vae.build` (the kind: from a spec),
:mod:`revkit.vae.plugin` (registers the kind and the objective).
"""

from revkit.vae.bounds import Bounds, elbo, importance_weighted, log_weights
from revkit.vae.model import VAE, Posterior

__all__ = ["VAE", "Bounds", "Posterior", "elbo", "importance_weighted", "log_weights"]
