"""``bench report html``: the results store as a self-contained static site (see ``benchmark.publish.site.build``)."""

from benchmark.publish.site.build import publish_site, render_site, report_html

__all__ = ["publish_site", "render_site", "report_html"]
