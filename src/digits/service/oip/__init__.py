"""The Open Inference Protocol v2 for digits models: tensors in and out, shared by the
protocol's gRPC and HTTP front ends."""
