"""The metadata API (Nova's ``nova-api-metadata``): what an instance reads about itself.

- :mod:`.identity`: which instance asks (X-Instance-ID and its HMAC signature), pure;
- :mod:`.document`: the OpenStack and EC2 documents of one instance, pure;
- :mod:`.cache`: built documents per instance, checked against the database on each request;
- :mod:`.app`: the ASGI application (paths, identity, answers);
- :mod:`.daemon`: ``vigil metadata``, and the same app inside ``vigil api`` and ``vigil up``.

See docs/metadata.md.
"""
