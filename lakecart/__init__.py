"""lakecart: raw e-commerce logs -> Delta feature store -> Horovod/TFRS training -> results in the lake."""

__version__ = "0.1.0"
