"""Content negotiation for views that have one representation."""

from __future__ import annotations

from rest_framework.negotiation import DefaultContentNegotiation


class SingleRendererNegotiation(DefaultContentNegotiation):
    """A view with one renderer (every API view: JSON) answers with it whatever ``Accept`` says,
    without parsing the header on every request (a measurable share of a PATCH's CPU); a view with
    several (the OpenAPI schema) negotiates as DRF does."""

    def select_renderer(self, request, renderers, format_suffix=None):
        if len(renderers) == 1 and not format_suffix:
            return renderers[0], renderers[0].media_type
        return super().select_renderer(request, renderers, format_suffix)
