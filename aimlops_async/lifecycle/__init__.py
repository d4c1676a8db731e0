"""Following platforms over time, above the endpoints of ``resources``: waits, watches, bulk runs.

``states`` judges a reading, ``schedule`` times the polls, ``watch`` follows one platform,
``fleet`` follows many by listing pages (concurrent waits join it), ``provision`` runs
``provision_many``, and ``platforms`` is the class behind ``client.platforms``.
"""
