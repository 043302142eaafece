"""Our own API, digits.v1, whichever transport carries it: its messages to the data
plane's domain types and back."""
