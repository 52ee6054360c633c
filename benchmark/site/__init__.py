"""``bench report html``: the results store as a self-contained static site (see ``benchmark.site.build``)."""

from benchmark.site.build import render_site, report_html

__all__ = ["render_site", "report_html"]
