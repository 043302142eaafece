"""digits: handwritten-digit recognition, from training job to gRPC service."""

__version__ = "0.1.0"
