"""backend_for() picks one backend per connection by its vendor; a vendor with
no class of its own gets the portable defaults."""

from __future__ import annotations

import types

from django.db import connections

from dbtools.backends import BACKENDS, DatabaseBackend, backend_for


def test_each_connection_gets_its_vendors_backend_once(alias):
    connection = connections[alias]
    backend = backend_for(connection)
    assert type(backend) is BACKENDS[connection.vendor]
    assert backend.connection is connection
    assert backend_for(connection) is backend


def test_a_connection_of_another_vendor_gets_the_portable_defaults():
    connection = types.SimpleNamespace(vendor="oracle")
    backend = backend_for(connection)  # type: ignore[arg-type]
    assert type(backend) is DatabaseBackend
    assert backend.vendor_name() == "oracle"
    assert backend.database_name("/srv/db") == "/srv/db"
    assert backend.can_copy([]) is False
    assert backend.truncatable(["a"]) == []
    assert backend_for(connection) is backend  # type: ignore[arg-type]
