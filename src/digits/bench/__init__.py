"""``digits bench``: the served path measured against the model's own in-process speed."""
