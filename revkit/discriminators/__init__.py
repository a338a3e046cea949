"""Data-space discriminators for adversarial objectives (registered through ``register_discriminators``)."""

from revkit.discriminators.base import Discriminator, DiscriminatorParams, DiscriminatorTable, as_table
from revkit.discriminators.conv import ConvDiscriminator, MLPDiscriminator

__all__ = ["ConvDiscriminator", "Discriminator", "DiscriminatorParams", "DiscriminatorTable", "MLPDiscriminator",
           "as_table"]
