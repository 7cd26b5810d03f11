"""attnrec: attention-based recommendation with honest evaluation, explanations and a real-time service."""

__version__ = "0.1.0"

__all__ = ["__version__"]
