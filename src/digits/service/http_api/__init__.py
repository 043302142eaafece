"""The HTTP front end: the Open Inference Protocol's REST form and the OpenAPI document,
on one port, in the same event loop as the gRPC server and over the same data plane."""
