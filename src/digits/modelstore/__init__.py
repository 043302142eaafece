"""The model volume contract shared by the jobs (writers) and the service (reader).

Layout (TF Serving's): ``<root>/<model-name>/<version>/`` with ``version`` a positive
integer, holding a SavedModel and ``model_card.json``, which is written last.
"""
