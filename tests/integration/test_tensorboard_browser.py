"""What a person sees of a comparison in TensorBoard: a real TensorBoard server and a real
headless Chromium (Debian's package, driven by Playwright) load the Scalars, HParams and
Custom Scalars dashboards of a small comparison, and the test reads what they render.

Screenshots go to the test's temporary folder, or to ``$RLSOFT_BROWSER_SCREENSHOTS`` when set.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from rlsoft.cli import main

CHROMIUM = shutil.which("chromium")
pytestmark = [
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="no chromium on PATH: apt-get install chromium (Debian's package; .ci/run "
        "installs it) to see the dashboards in a real browser",
    ),
    pytest.mark.timeout(180),
]
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is missing: pip install -e '.[dev]'"
)

COMPARE_DIR = "taxi_small"  # the comparison's folder: its tag prefix and trial ID label
VARIANTS = {
    "eps_const": {"exploration.policy": "epsilon_greedy", "exploration.epsilon": 0.1},
    "boltzmann_anneal": {
        "exploration.policy": "boltzmann",
        "exploration.temperature": {"type": "linear", "start": 10.0, "end": 0.1, "duration": 1500},
    },
    "softq": {
        "agent.type": "soft_q_learning",
        "agent.temperature": 0.1,
        "exploration.policy": "boltzmann",
    },
}
BUDGET = {"total_steps": 2000, "eval_every": 1000, "eval_episodes": 2, "log_every": 500}
COMPARISON = {
    "name": "taxi_small",
    "base": {
        "env": {"id": "Taxi-v4"},
        "agent": {"type": "q_learning", "learning_rate": 0.5},
        "train": {**BUDGET, "checkpoint_every": 0},
    },
    "seeds": 2,
    "variants": VARIANTS,
}
RUNS = [f"Taxi-v4/{variant}/seed_{seed}" for variant in VARIANTS for seed in (0, 1)]
CHART_TITLES = [
    "greedy evaluation return (every variant and seed)",
    "exploration entropy, nats (every variant and seed)",
    "exploration parameter ε or τ",
    "training episodic return",
]
# Collects the text of an element and of every shadow root below it (Polymer dashboards).
DEEP_TEXT = """(root) => {
  const out = [];
  const walk = (node) => {
    if (node.shadowRoot) walk(node.shadowRoot);
    for (const child of node.childNodes) {
      if (child.nodeType === Node.TEXT_NODE) {
        const text = child.textContent.trim();
        if (text) out.push(text);
      } else walk(child);
    }
  };
  walk(root);
  return out;
}"""


def _rlsoft(*args: object) -> int:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return main([str(a) for a in args])


@pytest.fixture(scope="module")
def logdirs(tmp_path_factory) -> dict[str, Path]:
    """``runs/`` holding the comparison and, beside it, one ordinary run of Taxi."""
    root = tmp_path_factory.mktemp("browser")
    parent = root / "runs"
    config = root / "compare.yaml"
    config.write_text(yaml.safe_dump(COMPARISON, allow_unicode=True))
    assert _rlsoft("compare", config, "--workers", 2, "--logdir", parent / COMPARE_DIR) == 0
    lone = root / "lone.yaml"
    lone.write_text(
        yaml.safe_dump(
            {
                "env": {"id": "Taxi-v4"},
                "agent": {"type": "q_learning"},
                "train": {**BUDGET, "progress": "off"},
            }
        )
    )
    assert _rlsoft("train", lone, "--logdir", parent) == 0
    return {"compare": parent / COMPARE_DIR, "parent": parent}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def tensorboard(logdir: Path, runs: int) -> Iterator[str]:
    """A TensorBoard server on ``logdir``, once it lists ``runs`` runs; yields its URL."""
    port = _free_port()
    server = subprocess.Popen(
        [
            Path(sys.executable).with_name("tensorboard"),
            "--logdir",
            logdir,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            with (
                contextlib.suppress(OSError, ValueError),
                urllib.request.urlopen(f"{base}/data/runs", timeout=5) as response,
            ):
                if len(json.loads(response.read())) >= runs:
                    break
            if time.monotonic() > deadline:
                pytest.fail(f"TensorBoard did not list {runs} runs of {logdir} within 60 s")
            time.sleep(0.3)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as playwright:
        # Debian's Chromium, not a browser build of Playwright's own; no sandbox as root.
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser) -> Iterator[object]:
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    page.set_default_timeout(30_000)
    yield page
    page.close()


def _screenshot(page, tmp_path: Path, name: str) -> Path:
    folder = Path(os.environ.get("RLSOFT_BROWSER_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    page.screenshot(path=str(path))
    return path


def test_scalars_dashboard_shows_named_runs_and_the_usual_charts(logdirs, page, tmp_path):
    with tensorboard(logdirs["compare"], runs=len(RUNS) + 1) as base:
        page.goto(f"{base}/#scalars")
        page.get_by_text(RUNS[-1], exact=True).first.wait_for()
        page.get_by_text("eval/mean_return", exact=True).first.wait_for()
        shown = page.locator("tf-runs-selector").first.evaluate(DEEP_TEXT)
        _screenshot(page, tmp_path, "scalars")
        # as a person would: filter the tags to find the entropy charts, the run's own and
        # the comparison's copy (its section is named after the comparison's folder)
        page.locator("tf-tag-filterer input").first.fill("entropy")
        for title in ("exploration/entropy", f"{COMPARE_DIR}/exploration/entropy"):
            page.get_by_text(title, exact=True).first.wait_for()
        texts = page.locator("tf-scalar-dashboard").first.evaluate(DEEP_TEXT)
        # chart titles in page order (run names start with the env id's capital letter)
        titles = list(dict.fromkeys(t for t in texts if re.fullmatch(r"[a-z_]+(/[a-z_]+)+", t)))
        _screenshot(page, tmp_path, "scalars_entropy")
    run_names = [text for text in shown if text in {*RUNS, "_comparison", "."}]
    assert sorted(run_names) == sorted([*RUNS, "_comparison"])  # no run named "."
    # a pane of the matching tags comes first, then the sections (those drawn so far)
    assert titles[:2] == ["exploration/entropy", f"{COMPARE_DIR}/exploration/entropy"]
    assert {"charts/episodic_return", "eval/mean_return"} <= set(titles[2:])
    assert not [t for t in titles[2:] if "entropy" in t]


def test_hparams_table_and_parallel_coordinates_tell_the_variants_apart(logdirs, page, tmp_path):
    with tensorboard(logdirs["compare"], runs=len(RUNS) + 1) as base:
        page.goto(f"{base}/#hparams")
        cells = page.locator("vaadin-grid-cell-content")
        trial_ids = {
            f"s{seed}·{variant} ({COMPARE_DIR})": variant for variant in VARIANTS for seed in (0, 1)
        }
        for trial_id in trial_ids:
            cells.filter(has_text=re.compile(rf"^\s*{re.escape(trial_id)}\s*$")).wait_for()
        texts = [text.strip() for text in cells.all_inner_texts()]
        _screenshot(page, tmp_path, "hparams_table")

        page.get_by_text("PARALLEL COORDINATES VIEW", exact=True).click()
        lines = page.locator("tf-hparams-parallel-coords-plot g.foreground path")
        lines.nth(len(RUNS) - 1).wait_for(state="attached")
        drawn = lines.count()
        axes = page.locator("tf-hparams-parallel-coords-plot").evaluate(DEEP_TEXT)
        _screenshot(page, tmp_path, "hparams_parallel_coordinates")

    # the shown columns: the variant's name and what differs between the variants
    headers = texts[texts.index("Trial ID") : texts.index("eval/mean_return")]
    assert headers == [
        "Trial ID",
        "Show Metrics",
        "agent.type",
        "exploration.epsilon",
        "exploration.policy",
        "exploration.temperature",
        "name",
    ]
    for variant in VARIANTS:  # each variant's name in the name column of both its trials
        assert texts.count(variant) == 2, variant
    row = texts.index(f"s1·boltzmann_anneal ({COMPARE_DIR})")
    assert texts[row + 2 : row + 7] == [
        "q_learning",
        "n/a",  # no ε: a Boltzmann policy
        "boltzmann",
        "linear 10→0.1 over 1,500 steps",
        "boltzmann_anneal",
    ]
    row = texts.index(f"s0·softq ({COMPARE_DIR})")
    assert texts[row + 2 : row + 7] == ["soft_q_learning", "n/a", "boltzmann", "1", "softq"]
    assert drawn == len(RUNS)  # every trial is a line, not only those with every field
    for column in ("agent.type", "exploration.policy", "name", "eval/mean_return"):
        assert column in axes


@pytest.mark.parametrize("opened_on", ["compare", "parent"])
def test_custom_scalars_chart_exactly_the_comparisons_runs(opened_on, logdirs, page, tmp_path):
    # on the parent folder TensorBoard also shows the lone run, which logs the same tags
    runs = len(RUNS) + 1 + (opened_on == "parent")
    with tensorboard(logdirs[opened_on], runs=runs) as base:
        page.goto(f"{base}/#custom_scalars")
        page.get_by_text(f"compare: {COMPARE_DIR}", exact=True).wait_for()
        for title in CHART_TITLES:
            page.get_by_text(title, exact=True).wait_for()
        matches = page.get_by_text(re.compile(r"^\s*Matches \(\d+\)\s*$"))
        matches.nth(len(CHART_TITLES) - 1).wait_for()
        # each chart's count settles once every run's data has arrived
        deadline = time.monotonic() + 30
        while True:
            counts = [text.strip() for text in matches.all_inner_texts()]
            if counts == [f"Matches ({len(RUNS)})"] * len(CHART_TITLES):
                break
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)
        _screenshot(page, tmp_path, f"custom_scalars_{opened_on}")
    assert counts == [f"Matches ({len(RUNS)})"] * len(CHART_TITLES)
