"""Every page of the site reads without a network: nothing a page needs comes from another host.

- **MathJax** (the formulas) is served from the site's own ``_static/mathjax``: a copy of MathJax 3's
  browser build (``es5/``) from the ``django-static-mathjax`` package (MathJax's release files, no
  Django needed), installed with the ``book`` extra. The build copies what the pages load: the
  ``tex-mml-chtml`` component Sphinx uses by default, the TeX extensions it loads on demand, the
  CommonHTML fonts, and the menu's accessibility tools (about 8 MB, never committed).
- **Widget loaders** (require.js and the ipywidgets embedder) are not loaded (``nb_ipywidgets_js`` is
  empty in ``_config.yml``): on a static page no widget is live, and the chapters show their
  explorers' content as static figures.
- **Scripts added twice** (sphinx-thebe adds its inline settings once per reading pass, and a second
  ``const`` declaration is a JavaScript error) are kept once.
- **Animations** (matplotlib's HTML player) link Font Awesome 4 from a CDN for their buttons; the
  theme already ships Font Awesome, which draws the same ``fa`` icons, so the link is dropped.
"""

from __future__ import annotations

import shutil
from importlib import metadata
from pathlib import Path

MATHJAX_DIST = "django-static-mathjax"
MATHJAX_COMPONENT = "tex-mml-chtml.js"
# What the component loads at run time, relative to es5/: the TeX extensions (\require, autoload), the
# fonts of the CommonHTML output, and the contextual menu with its accessibility tools.
MATHJAX_PARTS = ("input", "output/chtml", "a11y", "sre", "ui", "adaptors")
EXTERNAL_STYLESHEETS = (
    '<link rel="stylesheet"\nhref="https://maxcdn.bootstrapcdn.com/font-awesome/4.4.0/css/font-awesome.min.css">',
)


def mathjax_source() -> Path:
    """MathJax 3's ``es5`` folder in the installed package."""
    try:
        dist = metadata.distribution(MATHJAX_DIST)
    except metadata.PackageNotFoundError as err:
        raise RuntimeError(
            f"the site serves MathJax from the package {MATHJAX_DIST!r}; install the book extra: pip install '.[book]'"
        ) from err
    es5 = Path(dist.locate_file("mathjax/static/mathjax/es5"))
    if not (es5 / MATHJAX_COMPONENT).is_file():
        raise RuntimeError(f"{MATHJAX_DIST} has no {MATHJAX_COMPONENT} under {es5}")
    return es5


def copy_mathjax(source: Path, static: Path) -> None:
    """Copy the component and the parts it loads from ``source`` (es5/) to ``static``/mathjax."""
    target = static / "mathjax"
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source / MATHJAX_COMPONENT, target / MATHJAX_COMPONENT)
    for part in MATHJAX_PARTS:
        shutil.copytree(source / part, target / part, dirs_exist_ok=True)


def _config_inited(app, config) -> None:
    config.mathjax_path = f"mathjax/{MATHJAX_COMPONENT}"  # relative to _static


def _builder_inited(app) -> None:
    if app.builder.format == "html":
        copy_mathjax(mathjax_source(), Path(app.outdir) / "_static")


def _drop_external_stylesheets(app, pagename, templatename, context, doctree) -> None:
    body = context.get("body")
    if body:
        for link in EXTERNAL_STYLESHEETS:
            body = body.replace(link, "")
        context["body"] = body


def _drop_duplicate_scripts(app, pagename, templatename, context, doctree) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    kept, seen = [], set()
    for script in scripts:
        # the file (None or "" for an inline script), the priority, the attributes (an inline body among them)
        attributes = getattr(script, "attributes", {})
        filename = getattr(script, "filename", script) or ""
        key = (
            str(filename),
            getattr(script, "priority", 500),
            tuple(sorted((k, str(v)) for k, v in attributes.items())),
        )
        if key not in seen:
            seen.add(key)
            kept.append(script)
    scripts[:] = kept  # in place: the builder renders this very list


def setup(app):
    app.connect("config-inited", _config_inited)
    app.connect("builder-inited", _builder_inited)
    app.connect("html-page-context", _drop_external_stylesheets)
    # last, after the extensions that add scripts while a page is written
    app.connect("html-page-context", _drop_duplicate_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
