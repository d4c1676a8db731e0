"""Following platforms over time, above the endpoints of ``resources``: waits, watches, bulk runs.

``states`` judges a reading, ``schedule`` times the polls, ``watch`` holds the rules of following
one platform, ``fleet`` is the shared poller that reads for every wait, ``watch()`` and bulk run
of a client (by GET or listing pages, whichever costs fewer calls), ``provision`` runs
``provision_many``, and ``platforms`` is the class behind ``client.platforms``.
"""
