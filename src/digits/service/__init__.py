"""The gRPC classification service: registry, batching, servicer, server, client."""
