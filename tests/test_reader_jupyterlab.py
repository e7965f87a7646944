"""The reader copies (notebooks/), opened in JupyterLab 4 in a real browser (headless Chromium
through Selenium), as a student who downloads one and opens it in Jupyter sees it.

``tests/test_reader.py`` checks the copies' Markdown as text; this test checks what JupyterLab's
own renderer makes of it, which is where a stray MyST role, a dollar sign that opens no formula or
a TeX macro its MathJax does not know would show. A JupyterLab server runs on a copy of
``notebooks/`` (nothing is written into the repository), with its own configuration and settings:
no news feed, no update check, no extension manager, and every cell rendered (no windowing), so
that the whole notebook is in the page. Each copy is opened in Chromium with every host name but
the server's unresolvable, and checked: every Markdown cell rendered, no MyST fragment and no raw
TeX in the rendered text, every formula typeset by MathJax without an error, no solution, every
image loaded, no request to another host, no error in the console. Screenshots of the first screen
and of a screen with formulas go to ``_build/screenshots/lab-<chapter>.png`` and
``lab-<chapter>-maths.png``.

Run it with ``make site-test``; it is skipped when Chromium, chromedriver, Selenium or JupyterLab
is missing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest
from browser_support import chromium, start_chromium

ROOT = Path(__file__).resolve().parents[1]
COPIES = sorted((ROOT / "notebooks").glob("*.ipynb"))
SCREENSHOTS = ROOT / "_build" / "screenshots"

pytestmark = pytest.mark.xdist_group("reader-jupyterlab")

#: JupyterLab's settings for the test: nothing that goes online (news, update check, extension
#: manager's PyPI search) or covers the notebook (the news toast); every cell attached to the page,
#: so that the text of the whole notebook can be read; no autosave into the copy.
OVERRIDES = {
    "@jupyterlab/apputils-extension:notification": {
        "fetchNews": "false",
        "checkForUpdates": False,
        "doNotDisturbMode": True,
    },
    "@jupyterlab/extensionmanager-extension:plugin": {"enabled": False},
    "@jupyterlab/notebook-extension:tracker": {"windowingMode": "none"},
    "@jupyterlab/docmanager-extension:plugin": {"autosave": False},
}

#: MyST that a reader copy must not show: roles, directives and their options.
MYST = ["{glue", "{cite", "{eq}", "{doc}", "{numref}", "{ref}", "{exercise", "{solution", "{prf:", "{admonition"]
MYST += [":label:", "```{"]
#: What gives a solution away: nbgrader's marker, the site's toggle, the directive.
SOLUTION = ["### BEGIN SOLUTION", "Show the solution", "{solution"]
#: TeX left as text: a macro, display delimiters, or a dollar sign that opens a formula.
RAW_TEX = re.compile(r"\\[A-Za-z]+|\$\$|\$(?=[A-Za-z\\{(])")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


#: Server extensions that have no part in reading a notebook: nbgrader's (its JupyterLab extension
#: is turned off with them), the terminal, the classic Notebook's pages.
EXTENSIONS_OFF = [
    "nbgrader.server_extensions.assignment_list",
    "nbgrader.server_extensions.course_list",
    "nbgrader.server_extensions.formgrader",
    "nbgrader.server_extensions.validate_assignment",
    "jupyter_server_terminals",
    "notebook",
]


def _start_server(base: Path) -> tuple[subprocess.Popen, str, Path]:
    """A JupyterLab server on a copy of notebooks/, with its own configuration, data and runtime
    folders and the settings above; its process, address and root folder."""
    root = base / "notebooks"
    shutil.copytree(ROOT / "notebooks", root)
    settings = base / "app-settings"
    settings.mkdir()
    (settings / "overrides.json").write_text(json.dumps(OVERRIDES, indent=1))
    (settings / "page_config.json").write_text(json.dumps({"disabledExtensions": ["@jupyter/nbgrader"]}))
    config = base / "config"
    config.mkdir()
    server_config = {"ServerApp": {"jpserver_extensions": dict.fromkeys(EXTENSIONS_OFF, False)}}
    (config / "jupyter_server_config.json").write_text(json.dumps(server_config, indent=1))
    env = dict(os.environ, JUPYTER_PLATFORM_DIRS="1", JUPYTER_CONFIG_DIR=str(config))
    for name, folder in [
        ("JUPYTER_DATA_DIR", "data"),
        ("JUPYTER_RUNTIME_DIR", "runtime"),
        ("IPYTHONDIR", "ipython"),
        ("MPLCONFIGDIR", "matplotlib"),
    ]:
        env[name] = str(base / folder)
    env.setdefault("OMP_NUM_THREADS", "1")
    port = _free_port()
    with (base / "server.log").open("w") as log:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyterlab",
                "--no-browser",
                "--allow-root",
                "--ip=127.0.0.1",
                f"--port={port}",
                "--ServerApp.port_retries=0",
                "--IdentityProvider.token=",
                "--ServerApp.password=",
                f"--ServerApp.root_dir={root}",
                f"--LabApp.app_settings_dir={settings}",
                "--LabApp.news_url=None",
                "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
                "--LabApp.extension_manager=readonly",
            ],
            cwd=base,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return server, f"http://127.0.0.1:{port}", root


def _wait_for(server: subprocess.Popen, url: str, log: Path, timeout: float = 60) -> None:
    """Until the server answers; a server that stops or never answers fails the test with its log."""
    deadline = time.monotonic() + timeout
    while True:
        if server.poll() is not None:
            pytest.fail(f"JupyterLab stopped: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/api/status", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"JupyterLab did not answer in {timeout:.0f} s: {log.read_text()[-2000:]}")
        time.sleep(0.2)


def _start_browser(profile: Path):
    """Headless Chromium that reaches nothing but this machine: every host name other than
    127.0.0.1 is unresolvable, and nothing of Chromium's own goes online."""
    return start_chromium(reach_local=True, profile=profile, script_timeout=90)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """The server's address and root folder, and the browser, which starts while the server does.
    Both are stopped at the end, the server with the kernels it started."""
    if chromium() is None:
        pytest.skip("Chromium and chromedriver are needed: apt-get install chromium chromium-driver")
    pytest.importorskip("selenium.webdriver", reason="selenium is needed (the test extra)")
    pytest.importorskip("jupyterlab", reason="jupyterlab is needed (the lab extra)")
    base = tmp_path_factory.mktemp("jupyterlab")
    server, url, root = _start_server(base)
    driver = None
    try:
        driver = _start_browser(base / "chromium")
        _wait_for(server, url, base / "server.log")
        yield url, root, driver
    finally:
        if driver is not None:
            driver.quit()
        server.terminate()  # the server shuts down its kernels on the way out
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


# Waits until the open notebook shows all `cells` cells and its formulas have stopped changing
# (MathJax typesets each Markdown cell after it renders), then reports what its Markdown cells show.
INSPECT = r"""
const [cells, maths, done] = [arguments[0], arguments[1], arguments[arguments.length - 1]];
const settle = (ms) => new Promise((r) => setTimeout(r, ms));
const panel = () => document.querySelector(".jp-NotebookPanel:not(.lm-mod-hidden)");
const count = (selector) => (panel() ? panel().querySelectorAll(selector).length : -1);
(async () => {
  const start = Date.now();
  let state = "timeout", last = null, same = 0;
  while (Date.now() - start < 60000) {
    await settle(200);
    const now = [".jp-Notebook .jp-Cell", ".jp-RenderedMarkdown", "mjx-container"].map(count);
    same = now.join() === last ? same + 1 : 0;
    last = now.join();
    if (now[0] === cells && (now[2] > 0 || !maths) && same >= 4) { state = "settled"; break; }
  }
  const root = panel();
  const markdown = root ? Array.from(root.querySelectorAll(".jp-Notebook .jp-MarkdownCell")) : [];
  const images = markdown.flatMap((cell) => Array.from(cell.querySelectorAll("img")));
  await Promise.all(images.map((img) => img.complete ? null : new Promise((r) => {
    img.addEventListener("load", r); img.addEventListener("error", r); setTimeout(r, 10000);
  })));
  done({
    state: state,
    cells: root ? root.querySelectorAll(".jp-Notebook .jp-Cell").length : 0,
    markdown: markdown.map((cell) => {
      const rendered = cell.querySelector(".jp-RenderedMarkdown");
      if (!rendered) return {rendered: false, shown: "", text: "", maths: 0, errors: [], languages: []};
      const prose = rendered.cloneNode(true);
      prose.querySelectorAll("mjx-container, pre, code, script, style").forEach((e) => e.remove());
      return {
        rendered: true,
        shown: rendered.textContent,
        text: prose.textContent,
        maths: rendered.querySelectorAll("mjx-container").length,
        // a TeX error, and a macro MathJax does not know (its "noundefined" package shows it in red)
        errors: Array.from(rendered.querySelectorAll(
          "mjx-merror, [data-mjx-error], mjx-container [style*='color: red'], mjx-container [mathcolor='red']"
        )).map((e) => e.getAttribute("data-mjx-error") || e.textContent || e.outerHTML.slice(0, 120)),
        // a fenced block's info string: "{exercise}" where a directive was left as a code block
        languages: Array.from(rendered.querySelectorAll("pre [class*='language-'], pre[data-language]")).map(
          (e) => e.getAttribute("data-language") || e.className),
      };
    }),
    images: images.map((img) => ({src: img.currentSrc || img.src, width: img.naturalWidth})),
    text: root ? root.textContent : "",
  });
})();
"""

# Scrolls the first displayed formula (else the first formula) to the middle of the screen.
SCROLL_TO_MATHS = """
const maths = document.querySelector(".jp-NotebookPanel:not(.lm-mod-hidden) mjx-container[display='true']")
  || document.querySelector(".jp-NotebookPanel:not(.lm-mod-hidden) mjx-container");
if (maths) maths.scrollIntoView({block: "center"});
return !!maths;
"""


def read_notebook(driver, url: str, name: str, notebook, shots: Path = SCREENSHOTS) -> dict:
    """Open ``name`` in JupyterLab (a fresh workspace, so no other notebook comes back with it) and
    record what the checks need, with the requests and console messages of this page alone."""
    for log in ("performance", "browser"):
        driver.get_log(log)  # what earlier pages left
    has_maths = any("$" in c.source for c in notebook.cells if c.cell_type == "markdown")
    driver.get(f"{url}/lab/tree/{name}?reset")
    found = driver.execute_async_script(INSPECT, len(notebook.cells), has_maths)
    shots.mkdir(parents=True, exist_ok=True)
    stem = Path(name).stem
    driver.save_screenshot(str(shots / f"lab-{stem}.png"))
    if driver.execute_script(SCROLL_TO_MATHS):
        time.sleep(0.3)
        driver.save_screenshot(str(shots / f"lab-{stem}-maths.png"))
    messages = [json.loads(entry["message"])["message"] for entry in driver.get_log("performance")]
    found["requests"] = sorted(
        {m["params"]["request"]["url"] for m in messages if m["method"] == "Network.requestWillBeSent"}
        | {m["params"]["url"] for m in messages if m["method"] == "Network.webSocketCreated"}
    )
    found["console"] = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    return found


def _context(text: str, start: int, end: int) -> str:
    return " ".join(text[max(0, start - 40) : end + 40].split())


#: Console messages that are no fault of the notebook: Chromium refusing the "leave the page?"
#: prompt that JupyterLab raises when the test moves on from a notebook it has modified.
HARMLESS = re.compile(r"beforeunload")


def faults(found: dict, notebook, url: str) -> dict[str, list[str]]:
    """What is wrong with a notebook as JupyterLab showed it, by check: empty lists when nothing is."""
    where = [i for i, cell in enumerate(notebook.cells) if cell.cell_type == "markdown"]
    shown = found["markdown"]
    wrong = {check: [] for check in ("rendered", "myst", "maths", "solution", "images", "requests", "console")}
    if found["state"] != "settled":
        wrong["rendered"].append(f"the notebook did not settle: {found['cells']} of {len(notebook.cells)} cells")
    if len(shown) != len(where):
        wrong["rendered"].append(f"{len(shown)} Markdown cells shown, the file has {len(where)}")
    for i, cell in zip(where, shown):
        if not cell["rendered"]:
            wrong["rendered"].append(f"cell {i} is not rendered")
        for fragment in MYST:  # in code too: a directive's options show in the code block it becomes
            at = cell["shown"].find(fragment)
            if at >= 0:
                wrong["myst"].append(f"cell {i}: {fragment!r} in {_context(cell['shown'], at, at + len(fragment))!r}")
        wrong["myst"] += [f"cell {i}: a code block of 'language' {lang!r}" for lang in cell["languages"] if "{" in lang]
        text = cell["text"]  # the prose: TeX in a code span is code
        wrong["maths"] += [
            f"cell {i}: raw TeX {m.group(0)!r} in {_context(text, m.start(), m.end())!r}"
            for m in RAW_TEX.finditer(text)
        ]
        wrong["maths"] += [f"cell {i}: MathJax error {error!r}" for error in cell["errors"]]
        if "$" in notebook.cells[i].source and not cell["maths"]:
            wrong["maths"].append(f"cell {i} has '$' but no typeset formula")
    wrong["solution"] = [s for s in SOLUTION if s in found["text"]]
    wrong["images"] = [img["src"] for img in found["images"] if not img["width"]]
    port = url.rsplit(":", 1)[1]
    # the server, what the page makes itself, and the browser's own pages (its new tab page at start)
    inside = (f"{url}/", f"ws://127.0.0.1:{port}/", "data:", "blob:", "about:", "chrome:", "chrome-untrusted:")
    wrong["requests"] = [u for u in found["requests"] if not u.startswith(inside)]
    wrong["console"] = [m for m in found["console"] if not HARMLESS.search(m)]
    return wrong


@pytest.fixture(scope="module")
def shown(lab):
    """What JupyterLab shows of each reader copy, read once: {stem: faults by check}."""
    url, root, browser = lab
    results = {}

    def read(stem: str) -> dict[str, list[str]]:
        if stem not in results:
            notebook = nbformat.read(root / f"{stem}.ipynb", as_version=4)
            results[stem] = faults(read_notebook(browser, url, f"{stem}.ipynb", notebook), notebook, url)
        return results[stem]

    return read


STEMS = [p.stem for p in COPIES]


def test_there_are_reader_copies():
    assert len(STEMS) >= 6


@pytest.mark.parametrize("stem", STEMS)
def test_every_markdown_cell_is_rendered(shown, stem):
    assert shown(stem)["rendered"] == []


@pytest.mark.parametrize("stem", STEMS)
def test_no_myst_markup_is_shown(shown, stem):
    assert shown(stem)["myst"] == []


@pytest.mark.parametrize("stem", STEMS)
def test_every_formula_is_typeset(shown, stem):
    assert shown(stem)["maths"] == []


@pytest.mark.parametrize("stem", STEMS)
def test_no_solution_is_shown(shown, stem):
    assert shown(stem)["solution"] == []


@pytest.mark.parametrize("stem", STEMS)
def test_every_image_loads(shown, stem):
    assert shown(stem)["images"] == []


@pytest.mark.parametrize("stem", STEMS)
def test_no_request_leaves_the_machine(shown, stem):
    assert shown(stem)["requests"] == []


@pytest.mark.parametrize("stem", STEMS)
def test_no_error_in_the_console(shown, stem):
    assert shown(stem)["console"] == []


@pytest.mark.parametrize("stem", STEMS)
def test_screenshots_of_the_first_screen_and_of_formulas(shown, stem):
    shown(stem)
    assert (SCREENSHOTS / f"lab-{stem}.png").stat().st_size > 0
    assert (SCREENSHOTS / f"lab-{stem}-maths.png").stat().st_size > 0


#: A notebook with what the checks must catch, one fault in each cell.
BROKEN = [
    nbformat.v4.new_markdown_cell("# Broken\n\nAccuracy {glue:text}`acc:.1%` as in eq. {eq}`bilevel`."),
    nbformat.v4.new_markdown_cell("The ratio \\frac{a}{b} outside dollars, and $$ left open."),
    nbformat.v4.new_markdown_cell("A brace too many: $x^{2}}$."),
    nbformat.v4.new_markdown_cell("A macro MathJax does not know: $\\notamacro{x}$."),
    nbformat.v4.new_markdown_cell("```{exercise}\n:label: ex-one\nDo it.\n```"),
    nbformat.v4.new_markdown_cell("![missing](missing.png) ![remote](https://example.org/remote.png)"),
    nbformat.v4.new_code_cell("### BEGIN SOLUTION\nanswer = 42\n### END SOLUTION"),
]


def test_the_checks_catch_a_broken_notebook(lab, tmp_path):
    url, root, browser = lab
    notebook = nbformat.v4.new_notebook(cells=BROKEN)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, root / "broken.ipynb")
    wrong = faults(read_notebook(browser, url, "broken.ipynb", notebook, tmp_path), notebook, url)
    myst = "\n".join(wrong["myst"])
    assert "cell 0: '{glue'" in myst and "cell 0: '{eq}'" in myst
    assert "cell 4: a code block of 'language'" in myst and "cell 4: ':label:'" in myst
    maths = "\n".join(wrong["maths"])
    assert "cell 1: raw TeX '\\\\frac'" in maths and "cell 1: raw TeX '$$'" in maths
    assert "cell 2: MathJax error" in maths and "cell 3: MathJax error" in maths, maths
    assert wrong["solution"] == ["### BEGIN SOLUTION"]
    assert any("/missing.png" in src for src in wrong["images"])
    assert wrong["requests"] == ["https://example.org/remote.png"]
    assert any("missing.png" in message and "404" in message for message in wrong["console"])
    assert wrong["rendered"] == []
