"""Fixes to moto, loaded into the moto server by local_stack.

local_stack puts this file's directory on the server's PYTHONPATH, and Python imports
`sitecustomize` at start-up. Real AWS has none of the problems fixed here.

S3 conditional writes (`If-Match`, `If-None-Match: *`): moto checks the condition and then
writes, with other requests running on other threads in between, so two writers that read the
same version can both succeed and one update is lost. Conditional puts are made one at a time.

Lake Formation:

* moto 5.2 keeps a principal's permissions on a resource in a set of objects whose hash covers
  the permission list, and a grant that adds to an existing (principal, resource) pair changes
  that list in place. The object then sits in the set under a stale hash, and every later revoke
  of the pair fails with a KeyError (HTTP 500) for good.
* The server answers requests on several threads, with no lock around the catalog, so two
  grants or revokes at once can interleave inside it.

The fixed catalog methods replace an object in the set instead of changing it there, under one
lock.
"""

import threading


def _patch_lake_formation():
    try:
        from moto.lakeformation import models
    except ImportError:
        return
    lock = threading.RLock()
    catalog = models.PermissionCatalog

    def take(self, permission):
        """Removes and returns the entry for the same principal and resource, if any."""
        for existing in list(self.permissions):
            if permission.equal_principal_and_resouce(existing):
                self.permissions = {p for p in self.permissions if p is not existing}
                return existing
        return None

    def add_permission(self, permission):
        with lock:
            existing = take(self, permission)
            if existing is not None:
                existing.merge(permission)
                permission = existing
            self.permissions.add(permission)

    def remove_permission(self, permission):
        with lock:
            existing = take(self, permission)
            if existing is not None:
                existing.diff(permission)
                if not existing.is_empty():
                    self.permissions.add(existing)

    catalog.add_permission = add_permission
    catalog.remove_permission = remove_permission

    backend = models.LakeFormationBackend
    list_permissions = backend.list_permissions

    def locked_list_permissions(self, *args, **kwargs):
        with lock:
            return list_permissions(self, *args, **kwargs)

    backend.list_permissions = locked_list_permissions


def _patch_s3_conditional_writes():
    try:
        from moto.s3 import responses
    except ImportError:
        return
    lock = threading.Lock()
    put_object = responses.S3Response.put_object

    def put_object_atomically(self, *args, **kwargs):
        if self.headers.get("If-Match") or self.headers.get("If-None-Match"):
            with lock:
                return put_object(self, *args, **kwargs)
        return put_object(self, *args, **kwargs)

    responses.S3Response.put_object = put_object_atomically


_patch_lake_formation()
_patch_s3_conditional_writes()
