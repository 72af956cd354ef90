"""Public pages: home with the one-address demo, pricing, documentation, privacy, terms."""

from mailvet.web.public.controllers import PublicController

__all__ = ["PublicController"]
