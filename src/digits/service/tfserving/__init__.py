"""TensorFlow Serving's API for digits models, whichever transport carries it: model
specs, tensors, signatures and statuses in and out (the messages are the ones
``tensorflow-serving-api`` generates)."""
