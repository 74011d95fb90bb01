"""Building query trees in Python, as an alternative to query strings.

    from shoal import query as Q
    client.search("debian", vector=v, filter=Q.and_(Q.eq("section", "games"), Q.range_("installed_size_kb", lt=5000)))
    client.search("debian", query=Q.and_(Q.near(v), Q.not_(Q.near(w, top=50))))
"""

from protos.query_tree import and_, contains, eq, exists, in_, match, near, not_, or_, range_, render

__all__ = ["and_", "contains", "eq", "exists", "in_", "match", "near", "not_", "or_", "range_", "render"]
