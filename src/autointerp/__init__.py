"""autointerp: automatically interpret the latents of sparse autoencoders."""

__version__ = "0.1.0"
