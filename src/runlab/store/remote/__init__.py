"""The store interface over HTTP: a client of ``runlab server`` with the methods of the SQL store.

:class:`~runlab.store.remote.workspace.RemoteWorkspace` has the interface of an embedded workspace
folder (``store``, ``artifacts``, ``journal_dir``...), so the layers above run unchanged against a
server. :mod:`~runlab.store.remote.codec` is the wire format, :mod:`~runlab.store.remote.protocol` the
methods and who may call them, :mod:`~runlab.store.remote.client` the HTTP.
"""
