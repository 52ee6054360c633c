"""``bench report paper000``: paper 000 (VAE defenses with adversarial training and replay) reproduced.

Runs (or resumes) a fixed matrix in the store of ``OUT`` and writes ``OUT/paper000.md`` from its
records: training times beside the paper's Table I, the paper's own measure (per-image
reconstruction loss of recon(x_adv) against the clean x), robust accuracy at the training
epsilons, the effect of the replay priority weight w_l, and each qualitative finding of the
paper marked reproduced or not, with the numbers.
"""

from __future__ import annotations

import statistics
from pathlib import Path

import pandas as pd

from benchmark.config.run_config import RunConfig
from benchmark.reports.common import (
    cell,
    markdown_table,
    number,
    percent_with_interval,
    provenance,
    run_matrix,
    verdict,
)
from benchmark.store.atomic import atomic_write_text

TRAINING_MODES = ("clean", "FGSM", "PGD", "GNA", "GTA", "RANDOM")
#: Paper 000, Table I: training time (min:s) of the fc and the cnn VAE per training attack.
PAPER_TABLE_I = {
    "clean": ("2:32", "18:03"),
    "FGSM": ("2:34", "17:34"),
    "PGD": ("7:25", "55:16"),
    "GNA": ("2:39", "17:37"),
    "GTA": ("2:37", "20:08"),
    "RANDOM": ("3:53", "30:08"),
}
#: Paper 000: final per-image validation loss (BCE-sum scale) of fc models under each attack.
PAPER_LOSSES = {
    "RANDOM": {"clean": 82.2, "FGSM": 80.3, "PGD": 78.2, "GNA": 81.7, "GTA": 123.9},
    "RB Multi": {"clean": 82.2, "FGSM": 79.9, "PGD": 78.1, "GNA": 81.2, "GTA": 138.4},
    "clean": {"clean": 69.2},
}
#: Evaluation budgets: the training epsilons of PGD (0.08) and FGSM (0.15).
PGD_EPS, FGSM_EPS = 0.08, 0.15
#: Columns of the paper's measure: the attack and epsilon each one reads.
LOSS_COLUMNS = {
    "clean": ("fgsm", 0.0),
    "FGSM": ("fgsm", FGSM_EPS),
    "PGD": ("pgd", PGD_EPS),
    "GNA": ("gna", None),
    "GTA": ("gta", None),
}
#: The cnn VAE is trained for fewer epochs below the paper profile (about 2 min an epoch of PGD training on
#: 2 CPU cores); its training time is compared per epoch.
CNN_EPOCHS = {"smoke": 1, "quick": 2}


def _mode_spec(mode: str, arch: str, epochs: int | None) -> str:
    base = "vae" if mode == "clean" else f"adv-vae:train_attack={mode.lower()}"
    options = ("" if arch == "fc" else f":arch={arch}") + ("" if epochs is None else f":epochs={epochs}")
    return base + options


def matrix(profile: str) -> dict[str, dict[str, str]]:
    cnn_epochs = CNN_EPOCHS.get(profile)
    return {
        "fc": {mode: _mode_spec(mode, "fc", None) for mode in TRAINING_MODES}
        | {
            "RB": "rb",
            "RB Multi": "rb-multi",
            "RB Multi (w_l = 0)": "rb-multi:loss_weight=0",
            "RB Multi Critic": "rb-multi-critic",
        },
        "cnn": {mode: _mode_spec(mode, "cnn", cnn_epochs) for mode in TRAINING_MODES},
    }


def run(base: RunConfig, compute: bool = True) -> pd.DataFrame:
    """FGSM at 0 (clean) and its training ε, PGD at its training ε, GNA and GTA; cnn rows only for timing."""
    rows = matrix(base.profile.name)
    fc = list(rows["fc"].values())
    blocks = [
        run_matrix(base, fc, ["fgsm"], (0.0, FGSM_EPS), compute=compute),
        run_matrix(base, fc, ["pgd"], (PGD_EPS,), compute=compute),
        run_matrix(base, fc, ["gna", "gta"], (0.0,), compute=compute),
        run_matrix(base, list(rows["cnn"].values()), ["gna"], (0.0,), compute=compute),
    ]
    frame = pd.concat(blocks).drop_duplicates("cell_key")
    specs = [spec for arch in rows.values() for spec in arch.values()]
    return frame[frame["defense"].isin(specs)]  # the store holds other defenses too


def _seconds_per_epoch(row: pd.Series | None) -> float:
    if row is None or pd.isna(row.get("train_epochs")) or not row["train_epochs"]:
        return float("nan")
    return row["train_seconds"] / row["train_epochs"]


def _minutes(text: str) -> float:
    minutes, seconds = text.split(":")
    return int(minutes) + int(seconds) / 60


def _any_cell(frame: pd.DataFrame, defense: str) -> pd.Series | None:
    rows = frame[frame["defense"] == defense]
    return None if rows.empty else rows.iloc[0]


def _loss(frame: pd.DataFrame, defense: str, column: str) -> float:
    attack, eps = LOSS_COLUMNS[column]
    row = cell(frame, defense, attack, eps)
    return float("nan") if row is None else float(row["reconstruction_loss"])


def _timing_section(frame: pd.DataFrame, rows: dict[str, dict[str, str]]) -> tuple[list[str], dict[str, float]]:
    table, per_epoch = [], {}
    for mode in TRAINING_MODES:
        entry = {"training attack": mode}
        for arch in ("fc", "cnn"):
            row = _any_cell(frame, rows[arch][mode])
            per_epoch[f"{arch}:{mode}"] = _seconds_per_epoch(row)
            entry[f"{arch}: ours s (epochs)"] = (
                "–" if row is None else f"{row['train_seconds']:.0f} ({int(row['train_epochs'])})"
            )
            entry[f"{arch}: ours s/epoch"] = number(per_epoch[f"{arch}:{mode}"])
            entry[f"{arch}: ours ×clean"] = number(per_epoch[f"{arch}:{mode}"] / per_epoch[f"{arch}:clean"], 2)
            paper = PAPER_TABLE_I[mode][0 if arch == "fc" else 1]
            entry[f"{arch}: paper (×clean)"] = (
                f"{paper} ({_minutes(paper) / _minutes(PAPER_TABLE_I['clean'][0 if arch == 'fc' else 1]):.2f})"
            )
        table.append(entry)
    lines = [
        "## Training time (paper 000, Table I)",
        "",
        "Ours: wall-clock seconds of `fit` (epochs run, with early stopping), seconds per epoch, and the per-epoch "
        "ratio to clean training. The paper's: total min:s and the ratio to its clean training. Absolute times are "
        "not comparable (different hardware, and our attacks differentiate *through* the VAE, which the paper's "
        "reference code did not); the ratios are.",
        "",
        markdown_table(table),
        "",
    ]
    return lines, per_epoch


def _loss_section(frame: pd.DataFrame, rows: dict[str, str]) -> list[str]:
    table = []
    for label, defense in rows.items():
        entry = {"model (fc)": label, "defense": f"`{defense}`"}
        entry |= {column: number(_loss(frame, defense, column)) for column in LOSS_COLUMNS}
        table.append(entry)
        if label in PAPER_LOSSES:
            paper = PAPER_LOSSES[label]
            table.append(
                {"model (fc)": f"{label}, paper", "defense": ""}
                | {column: number(paper.get(column)) for column in LOSS_COLUMNS}
            )
    return [
        "## The paper's measure: reconstruction loss under attack",
        "",
        "Mean per-image BCE (summed over pixels) of the deployed reconstruction of x_adv against the clean x, over "
        f"the attacked test points; FGSM at ε = {FGSM_EPS}, PGD at ε = {PGD_EPS} (the training budgets, attacks on "
        "the deployed pipeline), GNA and GTA at their parameter ranges. The paper reports the validation loss of "
        "its training objective (BCE + its batch-averaged KL, which is small), so its figures are on the same scale.",
        "",
        markdown_table(table),
        "",
    ]


#: Rows trained on gradient-free attacks: they have no training ε, so they are compared under PGD's.
NO_TRAINING_EPS = ("GNA", "GTA")


def _beats_cell(label: str, beats: dict[str, bool]) -> str:
    if label not in beats:
        return "–"
    answer = "yes" if beats[label] else "no"
    return f"– (trained without ε; at PGD's: {answer})" if label in NO_TRAINING_EPS else answer


def _accuracy_section(frame: pd.DataFrame, rows: dict[str, str]) -> tuple[list[str], dict[str, bool]]:
    vanilla_pgd = cell(frame, rows["clean"], "pgd", PGD_EPS)
    vanilla_fgsm = cell(frame, rows["clean"], "fgsm", FGSM_EPS)
    table, beats = [], {}
    for label, defense in rows.items():
        pgd, fgsm = cell(frame, defense, "pgd", PGD_EPS), cell(frame, defense, "fgsm", FGSM_EPS)
        at_training_eps, vanilla = (fgsm, vanilla_fgsm) if label == "FGSM" else (pgd, vanilla_pgd)
        if label != "clean" and at_training_eps is not None and vanilla is not None:
            beats[label] = bool(at_training_eps["robust_accuracy"] > vanilla["robust_accuracy"])
        table.append(
            {
                "model (fc)": label,
                "clean accuracy %": number(None if pgd is None else 100 * pgd["clean_accuracy"]),
                f"FGSM ε={FGSM_EPS}": percent_with_interval(fgsm),
                f"PGD ε={PGD_EPS}": percent_with_interval(pgd),
                "beats `vae` at its training ε": _beats_cell(label, beats),
            }
        )
    return [
        "## Robust accuracy of the purified classifier",
        "",
        "Robust accuracy in % [95 % Wilson interval] of `classifier(vae(x))` (the shared CNN) under white-box "
        "attacks on the whole pipeline, EOT over the sampled z, and all repeated predictions required correct. "
        "The paper computed no accuracy; this is ours alone.",
        "",
        markdown_table(table),
        "",
    ], beats


def _findings(frame: pd.DataFrame, rows: dict[str, str], per_epoch: dict[str, float]) -> list[str]:
    attacks = ["FGSM", "PGD", "GNA", "GTA"]
    hardest = {
        label: max(attacks, key=lambda column, d=defense: _loss(frame, d, column)) for label, defense in rows.items()
    }
    gta_share = sum(value == "GTA" for value in hardest.values()) / len(hardest)
    gna_fgsm, gna_pgd = (_loss(frame, rows["GNA"], c) < _loss(frame, rows["clean"], c) for c in ("FGSM", "PGD"))

    def mean_attack_loss(label: str) -> float:
        return statistics.fmean(_loss(frame, rows[label], column) for column in attacks)

    def beats_random(label: str) -> bool:
        ours, random = cell(frame, rows[label], "pgd", PGD_EPS), cell(frame, rows["RANDOM"], "pgd", PGD_EPS)
        clearly_more_robust = ours["robust_accuracy_ci_low"] > random["robust_accuracy_ci_high"]
        return clearly_more_robust or mean_attack_loss(label) < 0.95 * mean_attack_loss("RANDOM")

    pgd_ratio = {arch: per_epoch[f"{arch}:PGD"] / per_epoch[f"{arch}:clean"] for arch in ("fc", "cnn")}
    cnn_ratios = [per_epoch[f"cnn:{mode}"] / per_epoch[f"fc:{mode}"] for mode in TRAINING_MODES]
    cnn_ratio = statistics.median(cnn_ratios)
    per_mode = ", ".join(f"{mode} {ratio:.1f}×" for mode, ratio in zip(TRAINING_MODES, cnn_ratios, strict=True))
    no_replay_gain = not beats_random("RB Multi") and not beats_random("RB Multi Critic")
    return [
        "## The paper's findings, re-tested",
        "",
        f"1. *GTA is by far the hardest attack* — {verdict(gta_share > 0.5)}: GTA gives the highest reconstruction "
        f"loss for {sum(v == 'GTA' for v in hardest.values())} of {len(hardest)} fc models "
        f"(hardest per model: {', '.join(f'{k}: {v}' for k, v in hardest.items())}).",
        f"2. *GNA-only training also lowers FGSM and PGD loss* — {verdict(gna_fgsm and gna_pgd)}: FGSM loss "
        f"{number(_loss(frame, rows['GNA'], 'FGSM'))} vs {number(_loss(frame, rows['clean'], 'FGSM'))} for the clean "
        f"VAE, PGD loss {number(_loss(frame, rows['GNA'], 'PGD'))} vs {number(_loss(frame, rows['clean'], 'PGD'))}.",
        f"3. *RB Multi and the critic did not beat RANDOM* — {verdict(no_replay_gain)}: mean loss over the four "
        f"attacks RANDOM {number(mean_attack_loss('RANDOM'))}, RB Multi {number(mean_attack_loss('RB Multi'))}, "
        f"RB Multi Critic {number(mean_attack_loss('RB Multi Critic'))}; PGD ε={PGD_EPS} robust accuracy "
        + ", ".join(
            f"{label} {percent_with_interval(cell(frame, rows[label], 'pgd', PGD_EPS))}"
            for label in ("RANDOM", "RB Multi", "RB Multi Critic")
        )
        + ' ("beat" = a non-overlapping interval or a mean loss lower by more than 5 %).',
        f"4. *PGD training costs about 3× clean* — {verdict(2.25 <= pgd_ratio['fc'] <= 3.75)}: per epoch "
        f"{number(pgd_ratio['fc'], 2)}× (fc), {number(pgd_ratio['cnn'], 2)}× (cnn); paper 2.93× / 3.06×. Ours "
        "differentiates through the VAE at every PGD step, which the paper's reference code skipped.",
        f"5. *The cnn VAE costs 6–7× the fc VAE* — {verdict(4.8 <= cnn_ratio <= 8.4)}: per-epoch ratio median "
        f"{number(cnn_ratio, 2)}× (per mode: {per_mode}); "
        "paper 5.5–7.7×.",
        "",
    ]


def _priority_weight_section(frame: pd.DataFrame, rows: dict[str, str]) -> list[str]:
    table = []
    for label in ("RB Multi", "RB Multi (w_l = 0)"):
        defense = rows[label]
        entry = {
            "replay priority": label.replace("RB Multi", "w_l = 0.01 (default)")
            if "w_l" not in label
            else "w_l = 0 (plain PER)",
            "defense": f"`{defense}`",
        }
        entry |= {f"loss {column}": number(_loss(frame, defense, column)) for column in LOSS_COLUMNS}
        entry[f"PGD ε={PGD_EPS} %"] = percent_with_interval(cell(frame, defense, "pgd", PGD_EPS))
        table.append(entry)
    return [
        "## The replay priority weight w_l",
        "",
        "The paper's priority is p = |l_new − l_prev| + ε + w_l·l_new but it gives no w_l, and its reference code "
        "never implemented the term. We use w_l = 0.01 (losses are ~70–140 per image, so w_l·l is ~1, the size of a "
        "typical loss change between visits; with w_l = 0 a settled entry's priority falls to ε and it is never "
        "replayed again). Measured effect, `rb-multi` with and without it:",
        "",
        markdown_table(table),
        "",
    ]


def write(base: RunConfig, frame: pd.DataFrame, destination: Path, command: str) -> Path:
    rows = matrix(base.profile.name)
    timing, per_epoch = _timing_section(frame, rows)
    accuracy, _ = _accuracy_section(frame, rows["fc"])
    lines = [
        "# Paper 000 reproduced: VAE defenses, adversarial training and biased replay",
        "",
        *provenance(frame, command, Path(base.out_dir)),
        "",
        *timing,
        *_loss_section(frame, rows["fc"]),
        *accuracy,
        *_priority_weight_section(frame, rows["fc"]),
        *_findings(frame, rows["fc"], per_epoch),
        "## Rows",
        "",
        "\n".join(f"- {label} ({arch}): `{spec}`" for arch, specs in rows.items() for label, spec in specs.items()),
        "",
    ]
    atomic_write_text(destination, "\n".join(lines))
    return destination


def report(base: RunConfig, command: str, compute: bool = True) -> Path:
    """Run (or resume) the matrix in the store of ``OUT`` (cells other runs computed are reused, never
    computed twice) and write ``OUT/paper000.md``."""
    frame = run(base, compute)
    return write(base, frame, Path(base.out_dir) / "paper000.md", command)
