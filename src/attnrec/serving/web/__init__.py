"""The web page for people, served by ``attnrec serve`` at ``/`` (``docs/serving.md``, "Web page").

Server-rendered Jinja2 templates plus one plain JavaScript file and one stylesheet shipped in this package (no
build step, nothing fetched from another host). The pages call the same service methods as the JSON endpoints:
:meth:`~attnrec.serving.service.RecommendationService.recommend_users` for a user's live recommendations, and
:meth:`~attnrec.serving.service.RecommendationService.add_events` (the durable ``POST /events`` path) for the
"add as event" buttons. :func:`install_web` adds the pages to an app built by
:func:`attnrec.serving.app.create_app`.
"""

from attnrec.serving.web.routes import WEB_PREFIX, install_web

__all__ = ["WEB_PREFIX", "install_web"]
