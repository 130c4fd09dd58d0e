"""Own videos in the wild: an annotation session (scribbles -> masks, predicted quality, next frame).

:class:`annotate.session.Session` is the API; ``recommend.py`` (command line) and ``app.py`` (web page)
sit on it. Nothing below (backends, agent, QA network) imports this package.
"""
from annotate.session import FALLBACK, METHODS, Recommendation, Round, Session, SessionError

__all__ = ["FALLBACK", "METHODS", "Recommendation", "Round", "Session", "SessionError"]
