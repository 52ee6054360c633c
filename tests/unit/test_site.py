"""`bench report html`: the static site rendered from a small synthetic store."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from benchmark.cli import main
from benchmark.publish.site import report_html
from benchmark.publish.site.build import flag_explanations, percent, slugs
from benchmark.results.frame import records_to_frame
from benchmark.results.leaderboard import FLAG_LEGEND
from benchmark.store.result_store import ResultStore
from tests.synthetic import masked_cell_record as _cell
from tests.synthetic import small_matrix

N = 8


#: cnn: fgsm and pgd at 0.1 and 0.3 (worst case at 0.3: points 2, 3); madry: fgsm and autoattack at 0.3
#: (worst: 0-4) and a semantic cell; masked: one pgd cell with masked gradients (flagged); vae:arch=cnn: only
#: an ε-free semantic cell (no worst case); cnn and madry: one L2 pgd cell each at 1.5.
CELLS = [
    *small_matrix(),
    _cell(8, "vae:arch=cnn", "gna", None, [True] * 6 + [False] * 2, threat_model="semantic"),
    _cell(9, "masked", "pgd", 0.3, [True] * 3 + [False] * 5, gradient_masking_share=0.5, trained=False),
    _cell(10, "cnn", "pgd", 1.5, [True] * 3 + [False] * 5, threat_model="l2"),
    _cell(11, "madry", "pgd", 1.5, [True] * 6 + [False] * 2, threat_model="l2"),
]


def write_store(root: Path) -> Path:
    """A store of ``CELLS`` in ``root`` (shared with the browser test)."""
    results = ResultStore(root)
    for record in CELLS:
        results.write(record)
    assert len(results.records()) == len(CELLS)
    return root


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.rows: list[tuple[str, list[str]]] = []  # (defense, its cells' text), in page order
        self._row: str | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for name in ("href", "src"):
            if attrs.get(name):
                self.links.append(attrs[name])
        if tag == "tr" and "data-defense" in attrs:
            self._row = attrs["data-defense"]
            self.rows.append((self._row, []))
        if tag == "td" and self._row is not None:
            self._cell = []

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self.rows[-1][1].append("".join(self._cell).strip())
            self._cell = None
        if tag == "tr":
            self._row = None


def _parse(path: Path) -> _Links:
    parser = _Links()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


@pytest.fixture
def site(tmp_path):
    write_store(tmp_path)
    paths = report_html(tmp_path)
    return tmp_path / "site", paths


def test_writes_the_index_and_one_page_per_defense(site):
    folder, paths = site
    assert paths[0] == folder / "index.html"
    assert sorted(p.name for p in paths[1:]) == [
        "attacks.html",
        "cnn.html",
        "madry.html",
        "masked.html",
        "vae_arch=cnn.html",
    ]
    assert sorted(folder.iterdir()) == sorted(paths)


def test_every_defense_appears_with_its_worst_case_number(site, tmp_path):
    folder, _ = site
    frame = records_to_frame(ResultStore(tmp_path).records())
    worst = frame[(frame["attack"] == "worst") & (frame["eps"] == 0.3)]
    parsed = _parse(folder / "index.html").rows
    rows = dict(reversed(parsed))  # a defense's first row: the L∞ table comes before the L2 and semantic ones
    assert set(worst["defense"]) == {"cnn", "madry", "masked"}
    for _, row in worst.iterrows():
        cells = rows[row["defense"]]
        assert cells[2] == percent(row["robust_accuracy"])
    assert rows["cnn"][2] == "25.0" and rows["madry"][2] == "62.5"
    # Ranked by the worst case: madry, masked, cnn; then L2; the semantic-only defense has its own table.
    assert [name for name, _ in parsed] == ["madry", "masked", "cnn", "madry", "cnn", "madry", "vae:arch=cnn"]
    assert rows["madry"][5] == "autoattack (62.5)"  # the attack that broke the most points
    assert rows["masked"][6] == "⚑ masked"  # the code; its explanation is on the defense page
    assert rows["vae:arch=cnn"][2] == "75.0"


def test_links_resolve_and_nothing_is_fetched_from_elsewhere(site):
    folder, paths = site
    for path in paths:
        for link in _parse(path).links:
            assert not re.match(r"[a-z]+://", link), (path.name, link)
            if link.startswith(("#", "data:")):
                continue
            assert (folder / link.split("#")[0]).is_file(), (path.name, link)
    index_links = set(_parse(folder / "index.html").links)
    assert {"cnn.html", "madry.html", "masked.html", "vae_arch=cnn.html"} <= index_links


def test_the_svg_has_alt_text(site):
    folder, _ = site
    page = (folder / "cnn.html").read_text(encoding="utf-8")
    svg = re.search(r"<svg [^>]*>", page).group(0)
    assert 'role="img"' in svg and "aria-label=" in svg
    assert "<title>cnn on mnist, linf, profile smoke</title>" in page
    label = re.search(r'aria-label="([^"]*)"', svg).group(1)
    assert "fgsm: 75.0 % at ε = 0.1, 50.0 % at ε = 0.3" in label and "worst:" in label
    assert page.count("<polyline") == 3 + 2  # L∞: fgsm, pgd, worst; L2: pgd, worst
    assert page.count("<polygon") == 3  # each L∞ curve has two ε: an interval band
    assert page.count("ε (L∞ budget)") == 1 and page.count("ε (L2 budget)") == 1


def _headings(path: Path) -> list[str]:
    return re.findall(r"<h2[^>]*>(.*?)</h2>", path.read_text(encoding="utf-8"))


def test_sections_lead_with_the_headline_threat_model(site):
    folder, _ = site
    assert _headings(folder / "index.html")[:3] == [
        "mnist, linf: worst case at ε = 0.3",
        "mnist, l2: worst case at ε = 1.5",
        "mnist, semantic: lowest robust accuracy over attacks",
    ]
    assert _headings(folder / "madry.html")[:4] == [
        "On the leaderboard",
        "mnist, linf, profile smoke",
        "mnist, l2, profile smoke",
        "mnist, semantic, profile smoke",
    ]


def test_the_index_plots_the_headline_worst_case_of_the_ranked_defenses(site):
    folder, _ = site
    index = (folder / "index.html").read_text(encoding="utf-8")
    assert index.count("<svg ") == 1
    linf, l2 = index.index("mnist, linf: worst case"), index.index("mnist, l2: worst case")
    assert linf < index.index("<svg ") < l2  # in the headline section
    plot = index[index.index("<svg ") : index.index("</svg>")]
    assert re.findall(r'data-defense="([^"]+)"', plot) == ["cnn", "madry", "masked"]
    assert plot.count("<polyline") == 3
    label = re.search(r'aria-label="([^"]*)"', plot).group(1)
    assert "against ε per defense" in label and "cnn: 62.5 % at ε = 0.1, 25.0 % at ε = 0.3" in label


def test_columns_the_index_leaves_out_are_on_the_defense_page(site):
    folder, _ = site
    index = (folder / "index.html").read_text(encoding="utf-8")
    head = index[index.index("<thead>") : index.index("</thead>")]
    assert "Training" not in head and "Randomized" not in head and "Profile" not in head
    page = (folder / "masked.html").read_text(encoding="utf-8")
    standing = page[page.index('id="standing"') : page.index("</section>")]
    explanation = flag_explanations()["masked"]
    assert "mnist, linf" in standing and "not trained" in standing and "smoke" in standing
    assert f"⚑ masked</abbr>: {explanation}" in standing


def test_flags_carry_their_explanation(site):
    folder, _ = site
    index = (folder / "index.html").read_text(encoding="utf-8")
    explanation = flag_explanations()["masked"]
    assert f'<abbr title="{explanation}">⚑ masked</abbr>' in index


def test_paired_comparison_of_neighbours_in_the_ranking(site):
    folder, _ = site
    index = (folder / "index.html").read_text(encoding="utf-8")
    assert "madry vs masked: worst at ε = 0.3 on the same 8 test points:" in index
    assert "masked vs cnn: worst at ε = 0.3 on the same 8 test points:" in index


def test_defense_page_has_cells_provenance_and_paper_figures(site):
    folder, _ = site
    page = (folder / "madry.html").read_text(encoding="utf-8")
    assert "62.5 [30.6, 86.3]" in page  # autoattack with its interval
    assert "hash-madry" in page and "python=3.11" in page and "2026-11-29T00:00:00+00:00" in page
    assert "paper 001, Table I" in page and "Schott et al. (ABS)" in page


def test_flag_legend_is_parsed_whole():
    legend = flag_explanations()
    assert set(legend) == {"eps0", "rises", "unbroken", "blackbox", "masked", "random", "quantized", "stale"}
    assert all(text and text in FLAG_LEGEND for text in legend.values())


def test_slugs_are_unique_and_never_the_index():
    pages = slugs(["a/b", "a_b", "index"])
    assert len(set(pages.values())) == 3 and "index" not in pages.values()


def test_cli_renders_the_site(tmp_path, capsys):
    write_store(tmp_path)
    assert main(["report", "html", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "site" / "index.html").is_file()
    assert "4 defense page(s)" in capsys.readouterr().out
